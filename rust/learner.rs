//! One context's learner: the algorithm's state plus what every algorithm shares (feedback counts
//! per model and the lock-in). The policy configuration lives once in the router and is passed
//! in, so an idle context costs only its state.
//!
//! Every algorithm is one file in `learners/` implementing [`Algorithm`] on its configuration
//! type. [`Policy`] and [`State`] list them, and `dispatch!` below is the only place that pairs a
//! policy with its state: a new learner is its file plus one line in each of those three lists.

use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::changes::{ChangeDetector, Changes};
use crate::error::{Error, Result};
use crate::learners::automaton::{AutomatonConfig, AutomatonState};
use crate::learners::exp3::{Exp3Config, Exp3State};
use crate::learners::q_learning::{QConfig, QValues};
use crate::learners::thompson::{Posteriors, ThompsonConfig};
use crate::learners::ucb::{UcbConfig, UcbState};
use crate::rng::Rng;
use crate::subset::Subset;

/// What a learner is told about the query it picks a model for: the models it may choose from,
/// what all contexts have learned and how much feedback the context itself has had per model
/// (filled in by [`Learner`]); a contextual learner would find the query's features here too.
#[derive(Clone, Copy, Debug)]
pub struct Query<'a> {
    pub subset: Subset<'a>,
    pub evidence: Option<&'a Evidence>,
    pub feedbacks: Option<&'a [u64]>,
}

impl<'a> Query<'a> {
    /// A query over `subset`, without pooled evidence.
    #[must_use]
    pub fn over(subset: Subset<'a>) -> Self {
        Query {
            subset,
            evidence: None,
            feedbacks: None,
        }
    }

    /// A query over `subset` with the pooled evidence of all contexts.
    #[must_use]
    pub fn pooled(subset: Subset<'a>, evidence: &'a Evidence) -> Self {
        Query {
            evidence: Some(evidence),
            ..Query::over(subset)
        }
    }
}

/// What all contexts have learned, pooled: per model, the (discounted, as the policy's own
/// evidence) number of feedbacks and their reward sum, over every context. A function of the
/// ordered events, like every learner's state. Learners that share evidence (the `share` of
/// UCB, Thompson sampling, Exp3 and Q-learning) shrink a context's estimates toward it, so a new
/// or rarely seen context does not start from nothing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    pub counts: Vec<f64>,
    pub sums: Vec<f64>,
}

impl Evidence {
    #[must_use]
    pub fn new(models: usize) -> Self {
        Evidence {
            counts: vec![0.0; models],
            sums: vec![0.0; models],
        }
    }

    /// Add one feedback, after scaling what was there by `discount` (1 keeps everything).
    pub fn record(&mut self, arm: usize, reward: f64, discount: f64) {
        if discount < 1.0 {
            for v in self.counts.iter_mut().chain(&mut self.sums) {
                *v *= discount;
            }
        }
        if let (Some(n), Some(s)) = (self.counts.get_mut(arm), self.sums.get_mut(arm)) {
            *n += 1.0;
            *s += reward;
        }
    }

    /// The pooled mean reward of `arm`, if it has any feedback.
    #[must_use]
    pub fn mean(&self, arm: usize) -> Option<f64> {
        let n = *self.counts.get(arm)?;
        (n > 0.0).then(|| (self.sums[arm] / n).clamp(0.0, 1.0))
    }

    /// The shared prior of `arm` for a learner with `share`: its pooled mean and the weight it
    /// gets, `min(share, pooled count)` pseudo-feedbacks. The cap keeps a prior from outweighing
    /// what it rests on: a pooled mean from one wrong answer counts as one failure, not `share`
    /// of them, so one unlucky first answer cannot lock a model out of every context. `None`
    /// without sharing or without pooled feedback of `arm`.
    #[must_use]
    pub fn prior(&self, arm: usize, share: f64) -> Option<(f64, f64)> {
        let n = *self.counts.get(arm)?;
        (share > 0.0 && n > 0.0).then(|| (share.min(n), (self.sums[arm] / n).clamp(0.0, 1.0)))
    }

    /// Check pooled evidence read from a snapshot.
    pub fn validate(&self, models: usize) -> Result<()> {
        let valid = self.counts.len() == models
            && self.sums.len() == models
            && self
                .counts
                .iter()
                .zip(&self.sums)
                .all(|(n, s)| n.is_finite() && *n >= 0.0 && *s >= -1e-9 && *s <= n + 1e-9);
        if valid {
            Ok(())
        } else {
            Err(Error::snapshot(
                "pooled evidence must be counts >= 0 with sums in [0, count], one per model",
            ))
        }
    }
}

/// One feedback event: everything an update may depend on. Learned state is a function of the
/// ordered events alone (never of local selections or randomness), so replicas applying the
/// same events in the same order hold the same state.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Event {
    pub arm: usize,
    /// In [0, 1].
    pub reward: f64,
    /// The probability the decision had of choosing `arm`, in (0, 1].
    pub propensity: f64,
    /// Applied feedbacks of `arm` so far, this one included.
    pub count: u64,
}

/// One learning algorithm, implemented by its configuration type.
pub trait Algorithm {
    /// The per-context state; it goes into snapshots.
    type State: Clone + Debug + PartialEq + Serialize + DeserializeOwned + Models;

    /// Check the hyperparameters; `models == 0` checks what can be checked without the pool.
    fn validate(&self, models: usize) -> Result<()>;
    /// Whether a converged context stops learning and always picks its model.
    fn lock(&self) -> bool;
    /// How much of the old evidence each feedback keeps (1: all); the pooled [`Evidence`]
    /// forgets at the same rate.
    fn discount(&self) -> f64 {
        1.0
    }
    /// A fresh context's state; `prior`, when given, has one value per model (meaning per
    /// algorithm, documented in its file).
    fn initial_state(&self, models: usize, prior: Option<&[f64]>) -> Result<Self::State>;
    /// Pick a model allowed by the query; returns it and the probability it was picked with.
    fn select(&self, state: &Self::State, query: Query<'_>, rng: &mut Rng) -> Result<(usize, f64)>;
    /// The distribution `select` draws from, over all models (zero outside the subset).
    fn probabilities(&self, state: &Self::State, query: Query<'_>) -> Vec<f64>;
    /// Learn from one event; returns the model the state has converged to afterwards, if any
    /// (only a locking policy uses it: one that does not lock may skip the test and return None).
    fn update(&self, state: &mut Self::State, event: Event) -> Option<usize>;
    /// The model the state has converged to, by the algorithm's documented rule.
    fn converged(&self, state: &Self::State) -> Option<usize>;
    /// Models best first by the learner's current estimate (its greedy choice first).
    fn ranking(&self, state: &Self::State) -> Vec<usize>;
    /// Check a state read from a snapshot.
    fn validate_state(&self, state: &Self::State, models: usize) -> Result<()>;
    /// The change detector whose detections restart a context, if the policy has one.
    fn detector(&self) -> Option<&ChangeDetector> {
        None
    }
}

/// What every state can say without its configuration.
pub trait Models {
    /// How many models the state covers.
    fn models(&self) -> usize;
}

/// Which learner every context runs, with its hyperparameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Policy {
    LearningAutomaton(AutomatonConfig),
    QLearning(QConfig),
    ThompsonSampling(ThompsonConfig),
    Ucb(UcbConfig),
    Exp3(Exp3Config),
}

/// The algorithm-specific part of a learner.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum State {
    LearningAutomaton(AutomatonState),
    QLearning(QValues),
    ThompsonSampling(Posteriors),
    Ucb(UcbState),
    Exp3(Exp3State),
}

/// The one dispatch point: runs `$body` with the state bound to `$s`, or the policy's
/// configuration bound to `$config`, or both (running `$mismatch` when their kinds differ).
macro_rules! dispatch {
    (state $state:expr, |$s:ident| $body:expr) => {
        match $state {
            State::LearningAutomaton($s) => $body,
            State::QLearning($s) => $body,
            State::ThompsonSampling($s) => $body,
            State::Ucb($s) => $body,
            State::Exp3($s) => $body,
        }
    };
    ($policy:expr, |$config:ident| $body:expr) => {
        match $policy {
            Policy::LearningAutomaton($config) => $body,
            Policy::QLearning($config) => $body,
            Policy::ThompsonSampling($config) => $body,
            Policy::Ucb($config) => $body,
            Policy::Exp3($config) => $body,
        }
    };
    ($policy:expr, $state:expr, |$config:ident, $s:ident| $body:expr, else $mismatch:expr) => {
        match ($policy, $state) {
            (Policy::LearningAutomaton($config), State::LearningAutomaton($s)) => $body,
            (Policy::QLearning($config), State::QLearning($s)) => $body,
            (Policy::ThompsonSampling($config), State::ThompsonSampling($s)) => $body,
            (Policy::Ucb($config), State::Ucb($s)) => $body,
            (Policy::Exp3($config), State::Exp3($s)) => $body,
            _ => $mismatch,
        }
    };
}

impl Policy {
    pub fn validate(&self, models: usize) -> Result<()> {
        dispatch!(self, |config| Algorithm::validate(config, models))
    }

    fn lock(&self) -> bool {
        dispatch!(self, |config| Algorithm::lock(config))
    }

    /// The policy's change detector (see [`Algorithm::detector`]).
    #[must_use]
    pub fn detector(&self) -> Option<&ChangeDetector> {
        dispatch!(self, |config| Algorithm::detector(config))
    }

    /// The learner's discount (see [`Algorithm::discount`]).
    #[must_use]
    pub fn discount(&self) -> f64 {
        dispatch!(self, |config| Algorithm::discount(config))
    }

    /// Validate a prior (one value per model) and turn it into a fresh learner's state.
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
            Policy::LearningAutomaton(c) => State::LearningAutomaton(c.initial_state(models, prior)?),
            Policy::QLearning(c) => State::QLearning(c.initial_state(models, prior)?),
            Policy::ThompsonSampling(c) => State::ThompsonSampling(c.initial_state(models, prior)?),
            Policy::Ucb(c) => State::Ucb(c.initial_state(models, prior)?),
            Policy::Exp3(c) => State::Exp3(c.initial_state(models, prior)?),
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Learner {
    pub state: State,
    /// Applied feedbacks per model (including those after lock-in).
    pub feedbacks: Vec<u64>,
    /// The model this learner locked onto, when the policy locks.
    pub locked: Option<u32>,
    /// With a change detector: its per-model histories and the changes detected (absent
    /// otherwise, and from snapshots written before detectors existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<Changes>,
}

/// The router builds every state from its own policy and checks restored ones, so a mismatch
/// is unreachable; this is what a mismatched pair would get rather than a panic.
fn mismatch() -> Error {
    Error::snapshot("a learner's kind differs from the router's policy")
}

impl Learner {
    #[must_use]
    pub fn new(state: State) -> Self {
        let models = dispatch!(state & state, |s| s.models());
        Learner {
            state,
            feedbacks: vec![0; models],
            locked: None,
            changes: None,
        }
    }

    /// Pick a model from `subset`; returns it and the probability it was picked with.
    /// A locked learner picks its model with certainty while that model is allowed, and
    /// otherwise falls back to its learned distribution over the subset.
    pub fn select(&self, policy: &Policy, query: Query<'_>, rng: &mut Rng) -> Result<(usize, f64)> {
        if let Some(arm) = self.locked.map(|a| a as usize)
            && query.subset.contains(arm)
        {
            return Ok((arm, 1.0));
        }
        let query = Query {
            feedbacks: Some(&self.feedbacks),
            ..query
        };
        dispatch!(policy, &self.state, |config, state| config.select(state, query, rng), else Err(mismatch()))
    }

    /// Apply reward `reward` in [0, 1] for model `arm`, chosen with probability `propensity`.
    /// The single update path: feedback on a decision and imported observations both end here.
    /// Returns whether the policy's change detector found a change, after which the learner
    /// restarted from the policy's fresh state (the router's prior is not reapplied).
    pub fn learn(&mut self, policy: &Policy, arm: usize, reward: f64, propensity: f64) -> bool {
        self.feedbacks[arm] += 1;
        if self.locked.is_some() {
            return false;
        }
        let event = Event {
            arm,
            reward,
            propensity,
            count: self.feedbacks[arm],
        };
        let converged = dispatch!(policy, &mut self.state, |config, state| config.update(state, event), else None);
        if policy.lock() {
            self.locked = converged.and_then(|arm| u32::try_from(arm).ok());
        }
        let Some(detector) = policy.detector() else {
            return false;
        };
        let models = self.feedbacks.len();
        let changes = self.changes.get_or_insert_with(|| Changes::new(models));
        if !changes.observe(detector, arm, reward, self.feedbacks[arm]) {
            return false;
        }
        if let Ok(fresh) = policy.initial_state(models, None) {
            self.state = fresh;
            self.locked = None;
        }
        true
    }

    /// The model this learner has converged to, if any.
    #[must_use]
    pub fn converged(&self, policy: &Policy) -> Option<usize> {
        if let Some(arm) = self.locked {
            return Some(arm as usize);
        }
        dispatch!(policy, &self.state, |config, state| config.converged(state), else None)
    }

    /// The distribution `select` draws from over all models.
    #[must_use]
    pub fn probabilities(&self, policy: &Policy, evidence: Option<&Evidence>) -> Vec<f64> {
        let models = self.feedbacks.len();
        if let Some(locked) = self.locked {
            return (0..models)
                .map(|arm| if arm == locked as usize { 1.0 } else { 0.0 })
                .collect();
        }
        let query = Query {
            subset: Subset::ALL,
            evidence,
            feedbacks: Some(&self.feedbacks),
        };
        dispatch!(policy, &self.state, |config, state| config.probabilities(state, query), else vec![0.0; models])
    }

    /// Models best first: the locked model, then the learner's own ranking.
    #[must_use]
    pub fn ranking(&self, policy: &Policy) -> Vec<usize> {
        let mut ranking = dispatch!(policy, &self.state, |config, state| config.ranking(state), else Vec::new());
        if let Some(locked) = self.locked.map(|a| a as usize) {
            ranking.retain(|&arm| arm != locked);
            ranking.insert(0, locked);
        }
        ranking
    }

    /// Check a learner read from a snapshot against the router's policy and pool.
    pub fn validate(&self, policy: &Policy, models: usize) -> Result<()> {
        if self.feedbacks.len() != models {
            return Err(Error::snapshot("feedback counts must have one entry per model"));
        }
        if self.locked.is_some_and(|arm| arm as usize >= models) {
            return Err(Error::snapshot("locked model index out of range"));
        }
        if let Some(changes) = &self.changes {
            changes.validate(models)?;
        }
        dispatch!(policy, &self.state, |config, state| config.validate_state(state, models), else Err(mismatch()))?;
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
}

/// Models ordered by `score`, highest first; ties keep the lower index first.
pub(crate) fn rank_by(scores: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    order
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

    fn fresh(policy: &Policy, models: usize) -> Learner {
        Learner::new(policy.initial_state(models, None).unwrap())
    }

    #[test]
    fn automaton_locks_and_stops_learning() {
        let policy = automaton(true);
        let mut learner = fresh(&policy, 2);
        for _ in 0..4 {
            learner.learn(&policy, 1, 1.0, 0.5);
        }
        assert_eq!(learner.converged(&policy), Some(1));
        assert_eq!(learner.locked, Some(1));
        let before = learner.state.clone();
        learner.learn(&policy, 0, 1.0, 0.5);
        assert_eq!(learner.state, before, "a locked learner does not learn");
        assert_eq!(learner.feedbacks, vec![1, 4], "but counts the feedback");
        assert_eq!(learner.probabilities(&policy, None), vec![0.0, 1.0]);
        assert_eq!(learner.ranking(&policy), vec![1, 0]);
        let mut rng = Rng::seed_from_u64(0);
        assert_eq!(
            learner.select(&policy, Query::over(Subset::ALL), &mut rng).unwrap(),
            (1, 1.0)
        );
        // With its model excluded it falls back to the learned distribution.
        assert_eq!(
            learner
                .select(&policy, Query::over(Subset(Some(&[true, false]))), &mut rng)
                .unwrap(),
            (0, 1.0)
        );
    }

    #[test]
    fn unlocked_automaton_keeps_learning() {
        let policy = automaton(false);
        let mut learner = fresh(&policy, 2);
        for _ in 0..4 {
            learner.learn(&policy, 1, 1.0, 0.5);
        }
        assert_eq!(learner.converged(&policy), Some(1));
        assert_eq!(learner.locked, None);
        for _ in 0..8 {
            learner.learn(&policy, 0, 1.0, 0.5);
        }
        assert_eq!(learner.converged(&policy), Some(0));
    }

    #[test]
    fn a_mismatched_state_is_refused_not_used() {
        let policy = automaton(false);
        let q = Policy::QLearning(QConfig {
            learning_rate: crate::learners::q_learning::StepSize::Constant(0.1),
            epsilon: 0.1,
            epsilon_decay: 1.0,
            epsilon_min: 0.1,
            patience: 5,
            share: 0.0,
            lock: true,
        });
        let mut learner = fresh(&q, 2);
        assert!(learner.validate(&policy, 2).is_err());
        assert!(
            learner
                .select(&policy, Query::over(Subset::ALL), &mut Rng::seed_from_u64(1))
                .is_err()
        );
        let before = learner.clone();
        learner.learn(&policy, 0, 1.0, 1.0);
        assert_eq!(learner.state, before.state);
    }

    #[test]
    fn priors_are_validated() {
        let a = automaton(true);
        assert!(a.initial_state(2, Some(&[1.0])).is_err());
        assert!(a.initial_state(2, Some(&[1.0, 0.0])).is_err());
        let State::LearningAutomaton(state) = a.initial_state(2, Some(&[3.0, 1.0])).unwrap() else {
            panic!("wrong kind")
        };
        assert_eq!(state.probabilities, vec![0.75, 0.25]);
        let q = Policy::QLearning(QConfig {
            learning_rate: crate::learners::q_learning::StepSize::Constant(0.1),
            epsilon: 0.1,
            epsilon_decay: 1.0,
            epsilon_min: 0.1,
            patience: 5,
            share: 0.0,
            lock: true,
        });
        assert!(q.initial_state(2, Some(&[0.5, 1.5])).is_err());
        assert!(q.initial_state(2, Some(&[0.5, 1.0])).is_ok());
    }

    fn every_policy() -> Vec<Policy> {
        use crate::learners::ucb::Bound;
        vec![
            automaton(false),
            automaton(true),
            Policy::QLearning(QConfig {
                learning_rate: crate::learners::q_learning::StepSize::Constant(0.3),
                epsilon: 0.2,
                epsilon_decay: 0.9,
                epsilon_min: 0.01,
                patience: 3,
                share: 2.0,
                lock: true,
            }),
            Policy::ThompsonSampling(ThompsonConfig {
                discount: 0.9,
                prior: [1.0, 2.0],
                threshold: 0.9,
                share: 3.0,
                floor: 0.05,
                detect_changes: Some(crate::changes::ChangeDetector { delta: 0.5, stride: 1 }),
                lock: true,
            }),
            Policy::ThompsonSampling(ThompsonConfig {
                discount: 1.0,
                prior: [1.0, 1.0],
                threshold: 0.99,
                share: 0.0,
                floor: 0.0,
                detect_changes: None,
                lock: false,
            }),
            Policy::Ucb(UcbConfig {
                exploration: 0.5,
                discount: 0.95,
                bound: Bound::Tuned,
                share: 5.0,
                floor: 0.02,
                detect_changes: Some(crate::changes::ChangeDetector { delta: 0.1, stride: 2 }),
                lock: true,
            }),
            Policy::Ucb(UcbConfig {
                exploration: 1.0,
                discount: 1.0,
                bound: Bound::Kl,
                share: 0.0,
                floor: 0.0,
                detect_changes: None,
                lock: false,
            }),
            Policy::Exp3(Exp3Config {
                gamma: 0.2,
                discount: 0.9,
                threshold: 0.6,
                share: 50.0,
                lock: true,
            }),
        ]
    }

    proptest::proptest! {
        /// For every learner: the same events give the same state whatever selections and
        /// random numbers came between them; the state stays valid; the selection distribution
        /// over any allowed subset is a distribution on that subset and `select` reports it; a
        /// serialized learner comes back identical.
        #[test]
        fn learner_properties(
            events in proptest::collection::vec((0usize..4, 0.0..=1.0f64, 0.01..=1.0f64), 0..60),
            seed in proptest::prelude::any::<u64>(),
            mask in proptest::collection::vec(proptest::prelude::any::<bool>(), 4),
        ) {
            for policy in every_policy() {
                let mut quiet = fresh(&policy, 4);
                let mut busy = fresh(&policy, 4);
                let mut rng = Rng::seed_from_u64(seed);
                let subset = if mask.iter().any(|&m| m) { Subset(Some(&mask)) } else { Subset::ALL };
                let mut evidence = Evidence::new(4);
                for &(arm, reward, propensity) in &events {
                    let query = Query { subset, evidence: Some(&evidence), feedbacks: Some(&busy.feedbacks) };
                    let (picked, p) = busy.select(&policy, query, &mut rng).unwrap();
                    proptest::prop_assert!(subset.contains(picked) && p > 0.0 && p <= 1.0);
                    if busy.locked.is_none_or(|l| !subset.contains(l as usize)) {
                        let expected = dispatch!(&policy, &busy.state, |c, s| c.probabilities(s, query), else Vec::new());
                        proptest::prop_assert!((expected[picked] - p).abs() < 1e-12, "{policy:?}");
                        let total: f64 = expected.iter().sum();
                        proptest::prop_assert!((total - 1.0).abs() < 1e-9);
                        proptest::prop_assert!((0..4).all(|a| subset.contains(a) || expected[a] == 0.0));
                    }
                    quiet.learn(&policy, arm, reward, propensity);
                    busy.learn(&policy, arm, reward, propensity);
                    // Other contexts' feedback moves the pooled evidence too.
                    evidence.record(arm, reward, policy.discount());
                    evidence.record((arm + 1) % 4, 1.0 - reward, policy.discount());
                }
                proptest::prop_assert_eq!(&quiet, &busy);
                proptest::prop_assert!(quiet.validate(&policy, 4).is_ok(), "{policy:?}");
                let json = serde_json::to_string(&quiet).unwrap();
                let back: Learner = serde_json::from_str(&json).unwrap();
                proptest::prop_assert_eq!(&back, &quiet);
                let total: f64 = quiet.probabilities(&policy, None).iter().sum();
                proptest::prop_assert!((total - 1.0).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn pooled_evidence_forgets_at_the_policy_rate() {
        let mut evidence = Evidence::new(2);
        evidence.record(0, 1.0, 0.5);
        evidence.record(1, 0.5, 0.5);
        assert_eq!(evidence.counts, vec![0.5, 1.0]);
        assert_eq!(evidence.sums, vec![0.5, 0.5]);
        assert_eq!((evidence.mean(0), evidence.mean(1)), (Some(1.0), Some(0.5)));
        assert!(evidence.validate(2).is_ok() && evidence.validate(3).is_err());
        assert_eq!(automaton(true).discount(), 1.0);
    }

    #[test]
    fn rank_by_breaks_ties_by_index() {
        assert_eq!(rank_by(&[0.2, 0.5, 0.2, 0.9]), vec![3, 1, 0, 2]);
    }
}
