//! One context's learner: the policy's state plus what every policy shares (feedback counts per
//! model and the lock-in). The policy configuration lives once in the router and is passed in,
//! so an idle context costs only its state.

use serde::{Deserialize, Serialize};

use crate::automaton::{self, AutomatonConfig};
use crate::error::{Error, Result};
use crate::q_learning::{QConfig, QValues};
use crate::rng::Rng;
use crate::subset::Subset;

/// Which learner every context runs, with its hyperparameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Policy {
    LearningAutomaton(AutomatonConfig),
    QLearning(QConfig),
}

impl Policy {
    pub fn validate(&self, models: usize) -> Result<()> {
        match self {
            Policy::LearningAutomaton(config) => config.validate(models),
            Policy::QLearning(config) => config.validate(),
        }
    }

    fn lock(&self) -> bool {
        match self {
            Policy::LearningAutomaton(config) => config.lock,
            Policy::QLearning(config) => config.lock,
        }
    }

    /// Validate a prior (one value per model) and turn it into a fresh learner's state:
    /// positive weights, normalized, for the automaton; initial values in [0, 1] for Q-learning.
    pub fn initial_state(&self, models: usize, prior: Option<&[f64]>) -> Result<State> {
        if let Some(prior) = prior
            && prior.len() != models
        {
            return Err(Error::parameter(
                "prior",
                format!("{} values", prior.len()),
                format!("one value per model ({models})"),
            ));
        }
        Ok(match self {
            Policy::LearningAutomaton(_) => {
                #[allow(clippy::cast_precision_loss)]
                let uniform = vec![1.0 / models as f64; models];
                let Some(prior) = prior else {
                    return Ok(State::LearningAutomaton { probabilities: uniform });
                };
                if let Some(bad) = prior.iter().find(|w| !(w.is_finite() && **w > 0.0)) {
                    return Err(Error::parameter(
                        "prior",
                        bad,
                        "finite, positive weights for the learning automaton",
                    ));
                }
                let total: f64 = prior.iter().sum();
                State::LearningAutomaton {
                    probabilities: prior.iter().map(|w| w / total).collect(),
                }
            }
            Policy::QLearning(config) => {
                let values = prior.map_or_else(|| vec![0.0; models], <[f64]>::to_vec);
                if let Some(bad) = values.iter().find(|q| !(0.0..=1.0).contains(*q)) {
                    return Err(Error::parameter(
                        "prior",
                        bad,
                        "initial Q-values in [0, 1], the reward's range",
                    ));
                }
                State::QLearning(QValues::new(config, values))
            }
        })
    }
}

/// The policy-specific part of a learner.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum State {
    LearningAutomaton { probabilities: Vec<f64> },
    QLearning(QValues),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Learner {
    pub state: State,
    /// Applied feedbacks per model (including those after lock-in).
    pub feedbacks: Vec<u64>,
    /// The model this learner locked onto, when the policy locks.
    pub locked: Option<u32>,
}

impl Learner {
    #[must_use]
    pub fn new(state: State) -> Self {
        let models = match &state {
            State::LearningAutomaton { probabilities } => probabilities.len(),
            State::QLearning(q) => q.values.len(),
        };
        Learner {
            state,
            feedbacks: vec![0; models],
            locked: None,
        }
    }

    /// Pick a model from `subset`; returns it and the probability it was picked with.
    /// A locked learner picks its model with certainty while that model is allowed, and
    /// otherwise falls back to its learned distribution over the subset.
    pub fn select(&self, subset: Subset<'_>, rng: &mut Rng) -> Result<(usize, f64)> {
        if let Some(arm) = self.locked.map(|a| a as usize)
            && subset.contains(arm)
        {
            return Ok((arm, 1.0));
        }
        match &self.state {
            State::LearningAutomaton { probabilities } => automaton::draw(probabilities, subset, rng),
            State::QLearning(q) => q.select(subset, rng),
        }
    }

    /// Apply reward `reward` in [0, 1] for model `arm`.
    pub fn learn(&mut self, policy: &Policy, arm: usize, reward: f64) {
        self.feedbacks[arm] += 1;
        if self.locked.is_some() {
            return;
        }
        let converged = match (&mut self.state, policy) {
            (State::LearningAutomaton { probabilities }, Policy::LearningAutomaton(config)) => {
                let (leader, p) = automaton::update(probabilities, arm, config.learning_rate * reward);
                (p >= config.threshold).then_some(leader)
            }
            (State::QLearning(q), Policy::QLearning(config)) => {
                q.update(config, arm, reward, self.feedbacks[arm]);
                q.converged(config)
            }
            // The router builds every state from its own policy, so the kinds always agree.
            _ => return,
        };
        if policy.lock() {
            self.locked = converged.and_then(|arm| u32::try_from(arm).ok());
        }
    }

    /// The model this learner has converged to, if any.
    #[must_use]
    pub fn converged(&self, policy: &Policy) -> Option<usize> {
        if let Some(arm) = self.locked {
            return Some(arm as usize);
        }
        match (&self.state, policy) {
            (State::LearningAutomaton { probabilities }, Policy::LearningAutomaton(config)) => {
                let (arm, p) = automaton::leader(probabilities);
                (p >= config.threshold).then_some(arm)
            }
            (State::QLearning(q), Policy::QLearning(config)) => q.converged(config),
            _ => None,
        }
    }

    /// The distribution `select` draws from over all models.
    #[must_use]
    pub fn probabilities(&self) -> Vec<f64> {
        let models = self.feedbacks.len();
        if let Some(locked) = self.locked {
            return (0..models)
                .map(|arm| if arm == locked as usize { 1.0 } else { 0.0 })
                .collect();
        }
        match &self.state {
            State::LearningAutomaton { probabilities } => probabilities.clone(),
            State::QLearning(q) => (0..models).map(|arm| q.probability(arm, Subset::ALL)).collect(),
        }
    }

    /// Check a learner read from a snapshot against the router's policy and pool.
    pub fn validate(&self, policy: &Policy, models: usize) -> Result<()> {
        if self.feedbacks.len() != models {
            return Err(Error::snapshot("feedback counts must have one entry per model"));
        }
        if self.locked.is_some_and(|arm| arm as usize >= models) {
            return Err(Error::snapshot("locked model index out of range"));
        }
        self.validate_state(policy, models)?;
        // A learner locks only under a locking policy, onto the model its state converged to,
        // and its state no longer changes afterwards.
        if let Some(arm) = self.locked {
            let unlocked = Learner {
                locked: None,
                ..self.clone()
            };
            if !policy.lock() || unlocked.converged(policy) != Some(arm as usize) {
                return Err(Error::snapshot(format!(
                    "locked onto model {arm}, but the policy does not lock or the state has not converged to it"
                )));
            }
        }
        Ok(())
    }

    fn validate_state(&self, policy: &Policy, models: usize) -> Result<()> {
        match (&self.state, policy) {
            (State::LearningAutomaton { probabilities }, Policy::LearningAutomaton(_)) => {
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
            (State::QLearning(q), Policy::QLearning(config)) => q.validate(config, models),
            _ => Err(Error::snapshot("a learner's kind differs from the router's policy")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn automaton(lock: bool) -> Policy {
        Policy::LearningAutomaton(AutomatonConfig {
            learning_rate: 0.5,
            threshold: 0.9,
            lock,
        })
    }

    #[test]
    fn automaton_locks_and_stops_learning() {
        let policy = automaton(true);
        let mut learner = Learner::new(policy.initial_state(2, None).unwrap());
        for _ in 0..4 {
            learner.learn(&policy, 1, 1.0);
        }
        assert_eq!(learner.converged(&policy), Some(1));
        assert_eq!(learner.locked, Some(1));
        let before = learner.state.clone();
        learner.learn(&policy, 0, 1.0);
        assert_eq!(learner.state, before, "a locked learner does not learn");
        assert_eq!(learner.feedbacks, vec![1, 4], "but counts the feedback");
        assert_eq!(learner.probabilities(), vec![0.0, 1.0]);
        let mut rng = Rng::seed_from_u64(0);
        assert_eq!(learner.select(Subset::ALL, &mut rng).unwrap(), (1, 1.0));
        // With its model excluded it falls back to the learned distribution.
        assert_eq!(
            learner.select(Subset(Some(&[true, false])), &mut rng).unwrap(),
            (0, 1.0)
        );
    }

    #[test]
    fn unlocked_automaton_keeps_learning() {
        let policy = automaton(false);
        let mut learner = Learner::new(policy.initial_state(2, None).unwrap());
        for _ in 0..4 {
            learner.learn(&policy, 1, 1.0);
        }
        assert_eq!(learner.converged(&policy), Some(1));
        assert_eq!(learner.locked, None);
        for _ in 0..8 {
            learner.learn(&policy, 0, 1.0);
        }
        assert_eq!(learner.converged(&policy), Some(0));
    }

    #[test]
    fn priors_are_validated() {
        let a = automaton(true);
        assert!(a.initial_state(2, Some(&[1.0])).is_err());
        assert!(a.initial_state(2, Some(&[1.0, 0.0])).is_err());
        let State::LearningAutomaton { probabilities } = a.initial_state(2, Some(&[3.0, 1.0])).unwrap() else {
            panic!("wrong kind")
        };
        assert_eq!(probabilities, vec![0.75, 0.25]);
        let q = Policy::QLearning(QConfig {
            learning_rate: crate::q_learning::StepSize::Constant(0.1),
            epsilon: 0.1,
            epsilon_decay: 1.0,
            epsilon_min: 0.1,
            patience: 5,
            lock: true,
        });
        assert!(q.initial_state(2, Some(&[0.5, 1.5])).is_err());
        assert!(q.initial_state(2, Some(&[0.5, 1.0])).is_ok());
    }
}
