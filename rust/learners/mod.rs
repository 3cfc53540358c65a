//! The learning algorithms, one file each, every one implementing
//! [`Algorithm`](crate::learner::Algorithm).

pub mod automaton;
pub mod exp3;
pub mod q_learning;
pub mod thompson;
pub mod ucb;

use crate::error::{Error, Result};

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
