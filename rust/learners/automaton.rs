//! The learning automaton: a probability vector over models updated by linear reward-inaction.
//!
//! After model `j` earns reward `r` in [0, 1], with learning rate `β` in (0, 1]:
//! `p ← p + β·r·(e_j − p)`. The chosen model moves toward 1, the others shrink in proportion, and
//! `r = 0` leaves `p` unchanged (inaction). Its expected step is a gradient-ascent step on the
//! expected reward, and the vector stays on the simplex: every entry in [0, 1], sum 1.
//! Small `β` converges slowly and almost surely to the best model; large `β` converges in few
//! queries, sometimes to a worse one.
//!
//! The session has converged once `max(p) ≥ threshold`; with `lock` it then stops learning and
//! always picks the leader.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::learner::{Algorithm, Event, Models, Query, rank_by};
use crate::rng::Rng;
use crate::subset::Subset;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutomatonConfig {
    pub learning_rate: f64,
    pub threshold: f64,
    pub lock: bool,
}

impl AutomatonConfig {
    /// `learning_rate` in (0, 1]; `threshold` in (1/models, 1] so that a fresh, uniform learner
    /// has not converged before its first query. `models == 0` checks without knowing the pool;
    /// with one model there is nothing to learn, and any threshold in (0, 1] will do.
    pub fn validate(&self, models: usize) -> Result<()> {
        if !(self.learning_rate > 0.0 && self.learning_rate <= 1.0) {
            return Err(Error::parameter("learning_rate", self.learning_rate, "in (0, 1]"));
        }
        if models <= 1 {
            return if self.threshold > 0.0 && self.threshold <= 1.0 {
                Ok(())
            } else {
                Err(Error::parameter("threshold", self.threshold, "in (0, 1]"))
            };
        }
        #[allow(clippy::cast_precision_loss)] // model counts are far below 2^52
        let uniform = 1.0 / models as f64;
        if !(self.threshold > uniform && self.threshold <= 1.0) {
            return Err(Error::parameter(
                "threshold",
                self.threshold,
                format!("in (1/{models}, 1] for {models} models (a uniform start would count as converged)"),
            ));
        }
        Ok(())
    }
}

/// A context's selection probabilities, on the simplex.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutomatonState {
    pub probabilities: Vec<f64>,
}

impl Models for AutomatonState {
    fn models(&self) -> usize {
        self.probabilities.len()
    }
}

impl Algorithm for AutomatonConfig {
    type State = AutomatonState;

    fn validate(&self, models: usize) -> Result<()> {
        AutomatonConfig::validate(self, models)
    }

    fn lock(&self) -> bool {
        self.lock
    }

    /// The prior is a vector of positive weights, normalized; without one, uniform.
    fn initial_state(&self, models: usize, prior: Option<&[f64]>) -> Result<AutomatonState> {
        let Some(prior) = prior else {
            #[allow(clippy::cast_precision_loss)]
            return Ok(AutomatonState {
                probabilities: vec![1.0 / models as f64; models],
            });
        };
        if let Some(bad) = prior.iter().find(|w| !(w.is_finite() && **w > 0.0)) {
            return Err(Error::parameter(
                "prior",
                bad,
                "finite, positive weights for the learning automaton",
            ));
        }
        let total: f64 = prior.iter().sum();
        Ok(AutomatonState {
            probabilities: prior.iter().map(|w| w / total).collect(),
        })
    }

    fn select(&self, state: &AutomatonState, query: Query<'_>, rng: &mut Rng) -> Result<(usize, f64)> {
        draw(&state.probabilities, query.subset, rng)
    }

    fn probabilities(&self, state: &AutomatonState, query: Query<'_>) -> Vec<f64> {
        restrict(&state.probabilities, query.subset)
    }

    fn update(&self, state: &mut AutomatonState, event: Event) -> Option<usize> {
        let (leader, p) = update(&mut state.probabilities, event.arm, self.learning_rate * event.reward);
        (p >= self.threshold).then_some(leader)
    }

    fn converged(&self, state: &AutomatonState) -> Option<usize> {
        let (arm, p) = leader(&state.probabilities);
        (p >= self.threshold).then_some(arm)
    }

    fn ranking(&self, state: &AutomatonState) -> Vec<usize> {
        rank_by(&state.probabilities)
    }

    fn validate_state(&self, state: &AutomatonState, models: usize) -> Result<()> {
        let probabilities = &state.probabilities;
        let sum: f64 = probabilities.iter().sum();
        if probabilities.len() != models
            || !probabilities.iter().all(|p| (0.0..=1.0).contains(p))
            || (sum - 1.0).abs() > 1e-9
        {
            return Err(Error::snapshot(
                "automaton probabilities must be on the simplex, one per model",
            ));
        }
        Ok(())
    }
}

/// The distribution [`draw`] draws from: `weights` renormalized over `subset`, or uniform over
/// the subset when it holds no mass.
pub(crate) fn restrict(weights: &[f64], subset: Subset<'_>) -> Vec<f64> {
    let n = weights.len();
    let total: f64 = (0..n).filter(|&arm| subset.contains(arm)).map(|arm| weights[arm]).sum();
    #[allow(clippy::cast_precision_loss)]
    let uniform = 1.0 / subset.count(n).max(1) as f64;
    (0..n)
        .map(|arm| match (subset.contains(arm), total > 0.0) {
            (false, _) => 0.0,
            (true, true) => weights[arm] / total,
            (true, false) => uniform,
        })
        .collect()
}

/// Draw from `weights` restricted to `subset`, renormalized over it. When the subset holds no
/// probability mass at all (the automaton gave it all to an excluded model), draw uniformly
/// from the subset instead. Returns the model and the probability it was drawn with.
pub(crate) fn draw(weights: &[f64], subset: Subset<'_>, rng: &mut Rng) -> Result<(usize, f64)> {
    let n = weights.len();
    let total: f64 = (0..n).filter(|&arm| subset.contains(arm)).map(|arm| weights[arm]).sum();
    if total > 0.0 {
        let target = rng.next_f64() * total;
        let mut cumulative = 0.0;
        let mut last = None;
        for arm in (0..n).filter(|&arm| subset.contains(arm) && weights[arm] > 0.0) {
            cumulative += weights[arm];
            last = Some(arm);
            if target < cumulative {
                return Ok((arm, weights[arm] / total));
            }
        }
        // Rounding left `target` a hair above the running sum: the last candidate takes it.
        if let Some(arm) = last {
            return Ok((arm, weights[arm] / total));
        }
    }
    let allowed = subset.count(n);
    let arm = subset.nth(n, rng.below(allowed.max(1))).ok_or(Error::NoEligibleModel)?;
    #[allow(clippy::cast_precision_loss)]
    Ok((arm, 1.0 / allowed as f64))
}

/// Linear reward-inaction step with `step = β·r` in [0, 1]. The other models are scaled by
/// `1 − step` and the chosen one takes exactly the remainder, so the sum stays 1 up to the
/// rounding of one subtraction instead of drifting over millions of updates.
///
/// Returns the leader afterwards, as [`leader`] would find it (the first index on ties), found
/// in the same pass: the convergence check needs it after every update.
pub(crate) fn update(probabilities: &mut [f64], arm: usize, step: f64) -> (usize, f64) {
    let keep = 1.0 - step;
    let mut others = 0.0;
    let mut best = (usize::MAX, f64::NEG_INFINITY);
    for (i, p) in probabilities.iter_mut().enumerate() {
        if i != arm {
            *p *= keep;
            others += *p;
            if *p > best.1 {
                best = (i, *p);
            }
        }
    }
    let chosen = (1.0 - others).max(0.0);
    probabilities[arm] = chosen;
    if chosen > best.1 || (chosen == best.1 && arm < best.0) {
        (arm, chosen)
    } else {
        best
    }
}

/// The model with the largest probability (the first one on ties) and that probability.
pub(crate) fn leader(probabilities: &[f64]) -> (usize, f64) {
    probabilities.iter().copied().enumerate().fold(
        (0, f64::NEG_INFINITY),
        |best, (i, p)| if p > best.1 { (i, p) } else { best },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use proptest::prelude::*;

    #[test]
    fn reward_inaction_moves_toward_the_chosen_model() {
        let mut p = vec![0.25; 4];
        update(&mut p, 2, 0.0);
        assert_eq!(p, vec![0.25; 4]);
        update(&mut p, 2, 0.5);
        assert_eq!(p, vec![0.125, 0.125, 0.625, 0.125]);
        update(&mut p, 0, 1.0);
        assert_eq!(p, vec![1.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn draw_renormalizes_over_the_subset() {
        let mut rng = Rng::seed_from_u64(3);
        let p = [0.5, 0.3, 0.2];
        let mask = [false, true, true];
        let mut hits = [0u32; 3];
        for _ in 0..10_000 {
            let (arm, prob) = draw(&p, Subset(Some(&mask)), &mut rng).unwrap();
            hits[arm] += 1;
            assert!((prob - p[arm] / 0.5).abs() < 1e-12);
        }
        assert_eq!(hits[0], 0);
        // Binomial(10000, 0.6): sd ~ 49, so 6000 +- 300 is over 6 sd.
        assert!((5_700..=6_300).contains(&hits[1]), "{hits:?}");
    }

    #[test]
    fn draw_falls_back_to_uniform_when_the_subset_has_no_mass() {
        let mut rng = Rng::seed_from_u64(3);
        let (arm, prob) = draw(&[1.0, 0.0, 0.0], Subset(Some(&[false, true, true])), &mut rng).unwrap();
        assert!(arm == 1 || arm == 2);
        assert_eq!(prob, 0.5);
        assert_eq!(
            draw(&[1.0, 0.0], Subset(Some(&[false, false])), &mut rng),
            Err(Error::NoEligibleModel)
        );
    }

    #[test]
    fn config_validation() {
        let ok = AutomatonConfig {
            learning_rate: 0.1,
            threshold: 0.99,
            lock: true,
        };
        assert!(ok.validate(4).is_ok());
        for bad in [
            AutomatonConfig {
                learning_rate: 0.0,
                ..ok.clone()
            },
            AutomatonConfig {
                learning_rate: 1.5,
                ..ok.clone()
            },
            AutomatonConfig {
                learning_rate: f64::NAN,
                ..ok.clone()
            },
            AutomatonConfig {
                threshold: 0.25,
                ..ok.clone()
            },
            AutomatonConfig {
                threshold: 1.01,
                ..ok.clone()
            },
        ] {
            assert!(bad.validate(4).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn updates_stay_on_the_simplex(steps in proptest::collection::vec((0usize..5, 0.0..=1.0f64), 0..300)) {
            let mut p = vec![0.2; 5];
            for (arm, step) in steps {
                let returned = update(&mut p, arm, step);
                prop_assert_eq!(returned, leader(&p), "the fused leader is the leader");
                let sum: f64 = p.iter().sum();
                prop_assert!((sum - 1.0).abs() < 1e-9, "sum {}", sum);
                prop_assert!(p.iter().all(|x| (0.0..=1.0).contains(x)));
            }
        }
    }
}
