//! Stateless Q-learning with epsilon-greedy selection: one value per model, a bandit.
//!
//! Each feedback with reward `R` for model `j` does `Q_j ← Q_j + α·(R − Q_j)`, with `α` constant
//! or the sample average `1/n_j`, then decays exploration: `ε ← max(ε_min, ε·decay)` (per applied
//! feedback, so exploration only shrinks as evidence comes in). Selection explores uniformly with
//! probability `ε`, otherwise picks the greedy model, ties broken uniformly at random.
//!
//! **Convergence rule** (the paper leaves it open): the exploration schedule is finished (`ε` is at
//! its floor, or never decays) and the same model has been the unique greedy choice after each of
//! the last `patience` feedbacks. With `lock` the session then stops exploring and learning.
//!
//! **Shared evidence** (not in the paper; off by default): with `share = s > 0` a context
//! selects with each value shrunk toward the model's mean over all contexts (the router's
//! pooled [`Evidence`]) as if that mean were `s` more feedbacks: `(n·Q + s·m)/(n + s)`, `n` the
//! context's own feedbacks of the model. A new context's values start at the pooled means and
//! its own evidence outweighs them past `s` feedbacks. The stored values, and convergence, stay
//! the context's own.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use std::borrow::Cow;

use crate::learner::{Algorithm, Event, Evidence, Models, Query, rank_by};
use crate::rng::Rng;
use crate::subset::Subset;

/// The named schedule of the step size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepSchedule {
    /// `α = 1/n_j`: `Q_j` is the plain mean of model `j`'s rewards.
    SampleAverage,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StepSize {
    Constant(f64),
    Schedule(StepSchedule),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QConfig {
    pub learning_rate: StepSize,
    pub epsilon: f64,
    pub epsilon_decay: f64,
    pub epsilon_min: f64,
    pub patience: u32,
    /// Pseudo-feedbacks at the pooled mean of all contexts each value is shrunk toward when
    /// selecting (0: contexts learn alone, the paper's learner).
    #[serde(default)]
    pub share: f64,
    pub lock: bool,
}

impl QConfig {
    pub fn validate(&self) -> Result<()> {
        if let StepSize::Constant(alpha) = self.learning_rate
            && !(alpha > 0.0 && alpha <= 1.0)
        {
            return Err(Error::parameter(
                "learning_rate",
                alpha,
                "in (0, 1] or \"sample_average\"",
            ));
        }
        if !(0.0..=1.0).contains(&self.epsilon) {
            return Err(Error::parameter("epsilon", self.epsilon, "in [0, 1]"));
        }
        if !(self.epsilon_decay > 0.0 && self.epsilon_decay <= 1.0) {
            return Err(Error::parameter("epsilon_decay", self.epsilon_decay, "in (0, 1]"));
        }
        if !(self.epsilon_min >= 0.0 && self.epsilon_min <= self.epsilon) {
            return Err(Error::parameter(
                "epsilon_min",
                self.epsilon_min,
                format!("in [0, epsilon={}]", self.epsilon),
            ));
        }
        if self.patience == 0 {
            return Err(Error::parameter("patience", self.patience, "at least 1"));
        }
        if !(self.share.is_finite() && self.share >= 0.0) {
            return Err(Error::parameter(
                "share",
                self.share,
                "finite and >= 0 (pseudo-feedbacks)",
            ));
        }
        Ok(())
    }

    /// The values a selection uses: the context's own, shrunk toward the pooled means when
    /// sharing (see the module docs).
    fn selection_values<'a>(&self, state: &'a QValues, query: Query<'_>) -> Cow<'a, QValues> {
        let (Some(evidence), Some(feedbacks)) = (query.evidence.filter(|_| self.share > 0.0), query.feedbacks) else {
            return Cow::Borrowed(state);
        };
        let values = shrink(&state.values, feedbacks, evidence, self.share);
        Cow::Owned(QValues {
            values,
            ..state.clone()
        })
    }

    fn schedule_finished(&self, epsilon: f64) -> bool {
        epsilon <= self.epsilon_min || self.epsilon_decay >= 1.0
    }
}

/// The per-context state: values, current exploration rate, and the greedy streak.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QValues {
    pub values: Vec<f64>,
    pub epsilon: f64,
    /// The unique greedy model after the last feedback, if there was a unique one.
    pub greedy: Option<u32>,
    /// For how many consecutive feedbacks `greedy` has been the unique greedy model.
    pub streak: u32,
}

impl QValues {
    #[must_use]
    pub fn new(config: &QConfig, initial: Vec<f64>) -> Self {
        QValues {
            values: initial,
            epsilon: config.epsilon,
            greedy: None,
            streak: 0,
        }
    }

    /// Values in [0, 1], epsilon within the schedule's range, greedy a real model.
    pub fn validate(&self, config: &QConfig, models: usize) -> Result<()> {
        // Values start in [0, 1] (the prior's range) and move toward rewards in [0, 1]; the slack
        // absorbs rounding, so a value far outside can only come from an edited snapshot.
        if self.values.len() != models || !self.values.iter().all(|q| (-1e-9..=1.0 + 1e-9).contains(q)) {
            return Err(Error::snapshot("Q-values must be one number in [0, 1] per model"));
        }
        if !(self.epsilon >= config.epsilon_min && self.epsilon <= config.epsilon) {
            return Err(Error::snapshot(format!(
                "epsilon {} outside the configured schedule",
                self.epsilon
            )));
        }
        if self.greedy.is_some_and(|g| g as usize >= models) {
            return Err(Error::snapshot("greedy model index out of range"));
        }
        Ok(())
    }

    /// The largest value over the subset and how many allowed models share it.
    fn greedy_set(&self, subset: Subset<'_>) -> (f64, usize) {
        let best = (0..self.values.len())
            .filter(|&arm| subset.contains(arm))
            .map(|arm| self.values[arm])
            .fold(f64::NEG_INFINITY, f64::max);
        let ties = (0..self.values.len())
            .filter(|&arm| subset.contains(arm) && self.values[arm] == best)
            .count();
        (best, ties)
    }

    /// The probability that [`QValues::select`] picks `arm` from `subset`.
    #[must_use]
    pub fn probability(&self, arm: usize, subset: Subset<'_>) -> f64 {
        let (best, ties) = self.greedy_set(subset);
        self.probability_given(arm, best, ties, subset.count(self.values.len()))
    }

    /// [`QValues::probability`] with the greedy set and the subset's size already known.
    fn probability_given(&self, arm: usize, best: f64, ties: usize, allowed: usize) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let explore = self.epsilon / allowed as f64;
        #[allow(clippy::cast_precision_loss)]
        let exploit = if self.values[arm] == best {
            (1.0 - self.epsilon) / ties as f64
        } else {
            0.0
        };
        explore + exploit
    }

    /// Epsilon-greedy over the subset. Always draws the explore coin first, so the stream of
    /// random numbers consumed does not depend on the values.
    pub fn select(&self, subset: Subset<'_>, rng: &mut Rng) -> Result<(usize, f64)> {
        let n = self.values.len();
        let allowed = subset.count(n);
        if allowed == 0 {
            return Err(Error::NoEligibleModel);
        }
        let (best, ties) = self.greedy_set(subset);
        let arm = if rng.next_f64() < self.epsilon {
            subset.nth(n, rng.below(allowed))
        } else {
            let k = rng.below(ties);
            (0..n)
                .filter(|&arm| subset.contains(arm) && self.values[arm] == best)
                .nth(k)
        }
        .ok_or(Error::NoEligibleModel)?;
        Ok((arm, self.probability_given(arm, best, ties, allowed)))
    }

    /// Learn from reward `reward` of model `arm`, which has now had `count` feedbacks in all.
    pub fn update(&mut self, config: &QConfig, arm: usize, reward: f64, count: u64) {
        #[allow(clippy::cast_precision_loss)]
        let alpha = match config.learning_rate {
            StepSize::Constant(alpha) => alpha,
            StepSize::Schedule(StepSchedule::SampleAverage) => 1.0 / count.max(1) as f64,
        };
        self.values[arm] += alpha * (reward - self.values[arm]);
        self.epsilon = (self.epsilon * config.epsilon_decay).max(config.epsilon_min);
        let (best, ties) = self.greedy_set(Subset::ALL);
        let greedy = if ties == 1 {
            self.values
                .iter()
                .position(|&q| q == best)
                .and_then(|arm| u32::try_from(arm).ok())
        } else {
            None
        };
        if greedy.is_some() && greedy == self.greedy {
            self.streak = self.streak.saturating_add(1);
        } else {
            self.greedy = greedy;
            self.streak = u32::from(greedy.is_some());
        }
    }

    /// The model this learner has converged to, by the rule in the module docs.
    #[must_use]
    pub fn converged(&self, config: &QConfig) -> Option<usize> {
        if config.schedule_finished(self.epsilon) && self.streak >= config.patience {
            self.greedy.map(|g| g as usize)
        } else {
            None
        }
    }
}

impl Models for QValues {
    fn models(&self) -> usize {
        self.values.len()
    }
}

impl Algorithm for QConfig {
    type State = QValues;

    fn validate(&self, _models: usize) -> Result<()> {
        QConfig::validate(self)
    }

    fn lock(&self) -> bool {
        self.lock
    }

    /// The prior gives the initial Q-values, in [0, 1] (the reward's range); without one, zeros.
    fn initial_state(&self, models: usize, prior: Option<&[f64]>) -> Result<QValues> {
        let values = prior.map_or_else(|| vec![0.0; models], <[f64]>::to_vec);
        if let Some(bad) = values.iter().find(|q| !(0.0..=1.0).contains(*q)) {
            return Err(Error::parameter(
                "prior",
                bad,
                "initial Q-values in [0, 1], the reward's range",
            ));
        }
        Ok(QValues::new(self, values))
    }

    fn select(&self, state: &QValues, query: Query<'_>, rng: &mut Rng) -> Result<(usize, f64)> {
        self.selection_values(state, query).select(query.subset, rng)
    }

    fn probabilities(&self, state: &QValues, query: Query<'_>) -> Vec<f64> {
        let state = self.selection_values(state, query);
        (0..state.values.len())
            .map(|arm| {
                if query.subset.contains(arm) {
                    state.probability(arm, query.subset)
                } else {
                    0.0
                }
            })
            .collect()
    }

    fn update(&self, state: &mut QValues, event: Event) -> Option<usize> {
        state.update(self, event.arm, event.reward, event.count);
        state.converged(self)
    }

    fn converged(&self, state: &QValues) -> Option<usize> {
        state.converged(self)
    }

    fn ranking(&self, state: &QValues) -> Vec<usize> {
        rank_by(&state.values)
    }

    fn validate_state(&self, state: &QValues, models: usize) -> Result<()> {
        state.validate(self, models)
    }
}

/// Each value shrunk toward its model's pooled mean, weighted `min(share, pooled count)` (see
/// [`Evidence::prior`]) against the context's own `feedbacks` of the model (a model without
/// pooled feedback keeps its value).
fn shrink(values: &[f64], feedbacks: &[u64], evidence: &Evidence, share: f64) -> Vec<f64> {
    values
        .iter()
        .zip(feedbacks)
        .enumerate()
        .map(|(arm, (&q, &n))| {
            #[allow(clippy::cast_precision_loss)]
            let n = n as f64;
            evidence.prior(arm, share).map_or(q, |(w, m)| (n * q + w * m) / (n + w))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> QConfig {
        QConfig {
            learning_rate: StepSize::Constant(0.5),
            epsilon: 0.2,
            epsilon_decay: 0.5,
            epsilon_min: 0.05,
            patience: 3,
            share: 0.0,
            lock: true,
        }
    }

    #[test]
    fn shared_evidence_shrinks_values_toward_the_pooled_means() {
        let mut evidence = Evidence::new(3);
        evidence.record(0, 0.9, 1.0);
        evidence.record(1, 0.3, 1.0);
        let c = QConfig { share: 2.0, ..config() };
        let q = QValues::new(&c, vec![0.5, 0.5, 0.5]);
        let feedbacks = [0, 6, 1];
        let query = Query {
            feedbacks: Some(&feedbacks),
            ..Query::pooled(Subset::ALL, &evidence)
        };
        // Model 0: no own feedback, the pooled mean; model 1: the pooled mean rests on one
        // feedback, so it weighs 1, not `share` = 2: (6·0.5 + 1·0.3)/7; model 2: no pooled
        // evidence, its own value.
        let values = c.selection_values(&q, query).values.clone();
        assert_eq!(values, vec![0.9, (6.0 * 0.5 + 0.3) / 7.0, 0.5]);
        let p = c.probabilities(&q, query);
        assert!((p[0] - (0.8 + 0.2 / 3.0)).abs() < 1e-12, "{p:?}");
        // Without sharing, the three values tie.
        let alone = QConfig { share: 0.0, ..c };
        assert!((alone.probabilities(&q, query)[0] - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn update_moves_toward_the_reward_and_decays_epsilon() {
        let c = config();
        let mut q = QValues::new(&c, vec![0.0; 3]);
        q.update(&c, 1, 1.0, 1);
        assert_eq!(q.values, vec![0.0, 0.5, 0.0]);
        assert_eq!(q.epsilon, 0.1);
        q.update(&c, 1, 1.0, 2);
        assert_eq!(q.values[1], 0.75);
        assert_eq!(q.epsilon, 0.05);
        q.update(&c, 1, 1.0, 3);
        assert_eq!(q.epsilon, 0.05, "floored");
    }

    #[test]
    fn sample_average_is_the_mean() {
        let c = QConfig {
            learning_rate: StepSize::Schedule(StepSchedule::SampleAverage),
            ..config()
        };
        let mut q = QValues::new(&c, vec![0.0; 2]);
        for (n, r) in [1.0, 0.0, 0.5, 0.5].into_iter().enumerate() {
            q.update(&c, 0, r, n as u64 + 1);
        }
        assert!((q.values[0] - 0.5).abs() < 1e-12);
    }

    #[test]
    fn converges_after_patience_once_the_schedule_is_done() {
        let c = config();
        let mut q = QValues::new(&c, vec![0.0; 3]);
        q.update(&c, 2, 1.0, 1); // streak 1, epsilon 0.1
        assert_eq!(q.converged(&c), None);
        q.update(&c, 2, 1.0, 2); // streak 2, epsilon 0.05
        assert_eq!(q.converged(&c), None);
        q.update(&c, 2, 1.0, 3); // streak 3, floor reached
        assert_eq!(q.converged(&c), Some(2));
        q.update(&c, 0, 1.0, 1); // 0 -> 0.5 < Q_2 = 0.875: still 2
        assert_eq!(q.converged(&c), Some(2));
    }

    #[test]
    fn selection_probability_matches_frequencies() {
        let q = QValues {
            values: vec![0.5, 0.9, 0.9, 0.1],
            epsilon: 0.2,
            greedy: None,
            streak: 0,
        };
        let mut rng = Rng::seed_from_u64(11);
        let mut hits = [0u32; 4];
        for _ in 0..40_000 {
            let (arm, p) = q.select(Subset::ALL, &mut rng).unwrap();
            hits[arm] += 1;
            assert!((p - q.probability(arm, Subset::ALL)).abs() < 1e-15);
        }
        // Expected shares 0.05, 0.45, 0.45, 0.05; Binomial sd at 0.45 is ~100 of 40,000.
        assert!((17_400..=18_600).contains(&hits[1]), "{hits:?}");
        assert!((1_600..=2_400).contains(&hits[0]), "{hits:?}");
    }

    #[test]
    fn validation_names_the_field() {
        let bad = [
            (
                QConfig {
                    learning_rate: StepSize::Constant(0.0),
                    ..config()
                },
                "learning_rate",
            ),
            (
                QConfig {
                    epsilon: 1.5,
                    ..config()
                },
                "epsilon",
            ),
            (
                QConfig {
                    epsilon_decay: 0.0,
                    ..config()
                },
                "epsilon_decay",
            ),
            (
                QConfig {
                    epsilon_min: 0.3,
                    ..config()
                },
                "epsilon_min",
            ),
            (
                QConfig {
                    patience: 0,
                    ..config()
                },
                "patience",
            ),
            (
                QConfig {
                    share: -0.5,
                    ..config()
                },
                "share",
            ),
        ];
        for (c, field) in bad {
            assert!(c.validate().unwrap_err().to_string().starts_with(field));
        }
    }
}
