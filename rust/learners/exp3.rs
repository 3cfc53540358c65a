//! Exp3 (Auer et al. 2002): exponential weights with importance-weighted rewards, for rewards
//! that may change arbitrarily (adversarial or drifting).
//!
//! Per model a log-weight `w`. Selection over the allowed models draws from
//! `p_i = (1 − γ)·e^{w_i}/Σ e^{w_j} + γ/K`, `K` the number of allowed models. A reward `r` for
//! model `j` chosen with probability `p_j` (the event's own propensity, so replicas and imported
//! logs update identically) adds `γ·(r/p_j)/K_all` to `w_j`, `K_all` the pool size: the estimate
//! `r/p_j` is unbiased for every model's reward whatever the selection was. With
//! `discount = δ < 1` every feedback first multiplies all log-weights by `δ`, pulling them toward
//! uniform so that a model that became good is found again. Log-weights are kept with their
//! maximum at 0, so they never overflow.
//!
//! **Shared evidence:** with `share = s > 0` a context selects as if it had also played `s`
//! rounds in which every model earned its mean over all contexts (the router's pooled
//! [`Evidence`]): `γ·s·m/K_all` added to each log-weight, what `s` rounds add in expectation
//! (the importance-weighted estimate is unbiased). Exp3 moves slowly by design, so a prior of a
//! few rounds barely moves it; it takes a `share` of hundreds (see docs/learners.md).
//!
//! **Convergence:** by the context's own weights: the leader's share of the weights, `e^{w}/Σ e^{w}`, reaches `threshold`.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::learner::{Algorithm, Event, Evidence, Models, Query, rank_by};
use crate::learners::automaton::{draw, leader};
use crate::learners::check_threshold;
use crate::rng::Rng;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exp3Config {
    pub gamma: f64,
    pub discount: f64,
    pub threshold: f64,
    /// Rounds at the pooled mean of all contexts added to each log-weight when selecting
    /// (0: contexts learn alone).
    #[serde(default)]
    pub share: f64,
    pub lock: bool,
}

impl Exp3Config {
    /// The log-weights a selection uses: the context's own, plus `share` rounds at each
    /// model's pooled mean when sharing (see the module docs).
    fn selection_weights<'a>(&self, state: &'a Exp3State, evidence: Option<&Evidence>) -> Cow<'a, [f64]> {
        let Some(evidence) = evidence.filter(|_| self.share > 0.0) else {
            return Cow::Borrowed(&state.log_weights);
        };
        #[allow(clippy::cast_precision_loss)]
        let step = self.gamma * self.share / state.log_weights.len() as f64;
        Cow::Owned(
            state
                .log_weights
                .iter()
                .enumerate()
                .map(|(arm, w)| w + evidence.mean(arm).map_or(0.0, |m| step * m))
                .collect(),
        )
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exp3State {
    pub log_weights: Vec<f64>,
}

impl Models for Exp3State {
    fn models(&self) -> usize {
        self.log_weights.len()
    }
}

/// The weights' shares `e^{w}/Σ e^{w}` over the models `allowed` admits (zero elsewhere).
fn shares(log_weights: &[f64], allowed: impl Fn(usize) -> bool) -> Vec<f64> {
    let top = (0..log_weights.len())
        .filter(|&arm| allowed(arm))
        .map(|arm| log_weights[arm])
        .fold(f64::NEG_INFINITY, f64::max);
    let mut shares: Vec<f64> = (0..log_weights.len())
        .map(|arm| {
            if allowed(arm) {
                (log_weights[arm] - top).exp()
            } else {
                0.0
            }
        })
        .collect();
    let total: f64 = shares.iter().sum();
    if total > 0.0 {
        for s in &mut shares {
            *s /= total;
        }
    }
    shares
}

impl Algorithm for Exp3Config {
    type State = Exp3State;

    fn validate(&self, models: usize) -> Result<()> {
        if !(self.gamma > 0.0 && self.gamma <= 1.0) {
            return Err(Error::parameter("gamma", self.gamma, "in (0, 1]"));
        }
        if !(self.discount > 0.0 && self.discount <= 1.0) {
            return Err(Error::parameter("discount", self.discount, "in (0, 1]"));
        }
        if !(self.share.is_finite() && self.share >= 0.0) {
            return Err(Error::parameter("share", self.share, "finite and >= 0 (rounds)"));
        }
        check_threshold(self.threshold, models)
    }

    fn lock(&self) -> bool {
        self.lock
    }

    fn discount(&self) -> f64 {
        self.discount
    }

    /// The router's prior gives positive initial weights (normalized), as for the automaton.
    fn initial_state(&self, models: usize, prior: Option<&[f64]>) -> Result<Exp3State> {
        let Some(prior) = prior else {
            return Ok(Exp3State {
                log_weights: vec![0.0; models],
            });
        };
        if let Some(bad) = prior.iter().find(|w| !(w.is_finite() && **w > 0.0)) {
            return Err(Error::parameter("prior", bad, "finite, positive weights for Exp3"));
        }
        let top = prior.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Ok(Exp3State {
            log_weights: prior.iter().map(|w| (w / top).ln()).collect(),
        })
    }

    fn select(&self, state: &Exp3State, query: Query<'_>, rng: &mut Rng) -> Result<(usize, f64)> {
        draw(&self.probabilities(state, query), query.subset, rng)
    }

    fn probabilities(&self, state: &Exp3State, query: Query<'_>) -> Vec<f64> {
        let subset = query.subset;
        #[allow(clippy::cast_precision_loss)]
        let explore = self.gamma / subset.count(state.log_weights.len()).max(1) as f64;
        let weights = self.selection_weights(state, query.evidence);
        let mut probabilities = shares(&weights, |arm| subset.contains(arm));
        for (arm, p) in probabilities.iter_mut().enumerate() {
            if subset.contains(arm) {
                *p = (1.0 - self.gamma) * *p + explore;
            }
        }
        probabilities
    }

    fn update(&self, state: &mut Exp3State, event: Event) -> Option<usize> {
        let weights = &mut state.log_weights;
        if self.discount < 1.0 {
            for w in weights.iter_mut() {
                *w *= self.discount;
            }
        }
        #[allow(clippy::cast_precision_loss)]
        let models = weights.len() as f64;
        // A propensity is in (0, 1]; the floor only guards imported logs against a zero.
        weights[event.arm] += self.gamma * event.reward / event.propensity.max(1e-12) / models;
        let top = weights.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        for w in weights.iter_mut() {
            *w -= top;
        }
        self.converged(state)
    }

    fn converged(&self, state: &Exp3State) -> Option<usize> {
        let (arm, share) = leader(&shares(&state.log_weights, |_| true));
        (share >= self.threshold).then_some(arm)
    }

    fn ranking(&self, state: &Exp3State) -> Vec<usize> {
        rank_by(&state.log_weights)
    }

    fn validate_state(&self, state: &Exp3State, models: usize) -> Result<()> {
        let w = &state.log_weights;
        if w.len() != models || !w.iter().all(|x| x.is_finite() && *x <= 0.0) || !w.contains(&0.0) {
            return Err(Error::snapshot(
                "Exp3 log-weights must be finite, at most 0 with a maximum of 0, one per model",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subset::Subset;

    fn config() -> Exp3Config {
        Exp3Config {
            gamma: 0.1,
            discount: 1.0,
            threshold: 0.99,
            share: 0.0,
            lock: false,
        }
    }

    #[test]
    fn importance_weighting_uses_the_propensity() {
        let c = config();
        let mut s = c.initial_state(2, None).unwrap();
        c.update(
            &mut s,
            Event {
                arm: 0,
                reward: 1.0,
                propensity: 0.25,
                count: 1,
            },
        );
        // γ·(1/0.25)/2 = 0.2, then shifted so the maximum is 0.
        assert!((s.log_weights[1] + 0.2).abs() < 1e-15 && s.log_weights[0] == 0.0);
    }

    #[test]
    fn probabilities_mix_in_uniform_exploration_over_the_subset() {
        let c = config();
        let s = Exp3State {
            log_weights: vec![0.0, -1000.0, -1000.0],
        };
        let p = c.probabilities(&s, Query::over(Subset::ALL));
        assert!((p[0] - (0.9 + 0.1 / 3.0)).abs() < 1e-12);
        let mask = [false, true, true];
        let p = c.probabilities(&s, Query::over(Subset(Some(&mask))));
        assert_eq!(p[0], 0.0);
        assert!((p[1] - 0.5).abs() < 1e-12 && (p[2] - 0.5).abs() < 1e-12);
    }

    #[test]
    fn shared_evidence_adds_share_rounds_at_the_pooled_means() {
        let mut evidence = Evidence::new(2);
        evidence.record(0, 1.0, 1.0);
        let s = Exp3State {
            log_weights: vec![0.0, 0.0],
        };
        let query = Query::pooled(Subset::ALL, &evidence);
        assert_eq!(config().probabilities(&s, query), vec![0.5, 0.5]);
        let shared = Exp3Config {
            share: 20.0,
            ..config()
        };
        // Model 0: 20 rounds at reward 1 add γ·20·1/2 = 1 to its log-weight; model 1 has no
        // pooled evidence.
        let weight = 1.0f64.exp() / (1.0f64.exp() + 1.0);
        let p = shared.probabilities(&s, query);
        assert!((p[0] - (0.9 * weight + 0.05)).abs() < 1e-12, "{p:?}");
    }

    #[test]
    fn bad_configs_name_the_field() {
        for (c, field) in [
            (Exp3Config { gamma: 0.0, ..config() }, "gamma"),
            (
                Exp3Config {
                    discount: 2.0,
                    ..config()
                },
                "discount",
            ),
            (
                Exp3Config {
                    threshold: 0.3,
                    ..config()
                },
                "threshold",
            ),
            (
                Exp3Config {
                    share: f64::NAN,
                    ..config()
                },
                "share",
            ),
        ] {
            assert!(Algorithm::validate(&c, 3).unwrap_err().to_string().starts_with(field));
        }
    }
}
