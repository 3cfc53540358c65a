//! The learning algorithms, one file each, every one implementing
//! [`Algorithm`](crate::learner::Algorithm).

pub mod automaton;
pub mod exp3;
pub mod q_learning;
pub mod thompson;
pub mod ucb;

use crate::error::{Error, Result};
use crate::subset::Subset;

/// A convergence threshold on a selection probability: in (1/models, 1], so that a fresh,
/// uniform learner has not converged before its first query (any value in (0, 1] with one model;
/// `models == 0` checks without knowing the pool).
pub(crate) fn check_threshold(threshold: f64, models: usize) -> Result<()> {
    #[allow(clippy::cast_precision_loss)] // model counts are far below 2^52
    let uniform = if models <= 1 { 0.0 } else { 1.0 / models as f64 };
    if threshold > uniform && threshold <= 1.0 {
        Ok(())
    } else if models <= 1 {
        Err(Error::parameter("threshold", threshold, "in (0, 1]"))
    } else {
        Err(Error::parameter(
            "threshold",
            threshold,
            format!("in (1/{models}, 1] for {models} models (a uniform start would count as converged)"),
        ))
    }
}

/// An exploration floor: a share of decisions in [0, 0.5] drawn uniformly from the allowed models.
pub(crate) fn check_floor(floor: f64) -> Result<()> {
    if (0.0..=0.5).contains(&floor) {
        Ok(())
    } else {
        Err(Error::parameter(
            "floor",
            floor,
            "in [0, 0.5] (the share of decisions drawn uniformly)",
        ))
    }
}

/// `probabilities` (a distribution over the models `subset` allows) mixed with `floor` of the
/// uniform distribution over them: what a learner with an exploration floor draws from.
pub(crate) fn floored(mut probabilities: Vec<f64>, subset: Subset<'_>, floor: f64) -> Vec<f64> {
    if floor > 0.0 {
        let n = probabilities.len();
        #[allow(clippy::cast_precision_loss)]
        let uniform = floor / subset.count(n).max(1) as f64;
        for (arm, p) in probabilities.iter_mut().enumerate() {
            if subset.contains(arm) {
                *p = (1.0 - floor) * *p + uniform;
            }
        }
    }
    probabilities
}
