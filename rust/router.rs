//! The router: a pool of models, one learner per context, decisions awaiting feedback, and the
//! seeded generator. Everything a routing decision touches, in one value that the bindings put
//! behind a single lock.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::contexts::{Contexts, Counts};
use crate::decisions::{Ledger, MAX_NEXT_ID, Pending};
use crate::error::{DecisionProblem, Error, Result};
use crate::identity;
use crate::learner::{Evidence, Learner, Policy, Query, State};
use crate::reward::{Observation, Reward};
use crate::rng::Rng;
use crate::subset::Subset;

/// Everything that defines a router's behaviour; stored verbatim in snapshots.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub models: Vec<String>,
    pub policy: Policy,
    pub reward: Reward,
    /// Starting point of every new context, one value per model (see `Policy::initial_state`).
    pub prior: Option<Vec<f64>>,
    /// How many newer decisions may be issued before an unanswered one expires.
    pub max_pending: usize,
    /// The context of selections that name none.
    pub default_context: String,
    /// The most learned contexts kept (and, apart, the most contexts created by selections that
    /// have not learned yet); `None`: unbounded. Absent from snapshots before format 3, whose
    /// routers were unbounded.
    #[serde(default)]
    pub max_contexts: Option<u32>,
}

/// The largest `max_contexts`: both lists together then still fit 32-bit slot indices.
pub const MAX_CONTEXTS: u32 = 1 << 31;

impl Config {
    /// Validate every part; returns the state a new context starts from.
    pub fn validate(&self) -> Result<State> {
        if self.models.is_empty() {
            return Err(Error::parameter("models", "[]", "a non-empty list of model names"));
        }
        if u32::try_from(self.models.len()).is_err() {
            return Err(Error::parameter("models", self.models.len(), "fewer than 2^32 models"));
        }
        let mut seen = std::collections::HashSet::new();
        for name in &self.models {
            if name.is_empty() {
                return Err(Error::parameter("models", "\"\"", "non-empty model names"));
            }
            if !seen.insert(name.as_str()) {
                return Err(Error::parameter(
                    "models",
                    format!("{name:?} twice"),
                    "unique model names",
                ));
            }
        }
        self.policy.validate(self.models.len())?;
        self.reward.validate()?;
        Ledger::new(self.max_pending)?;
        if let Some(max) = self.max_contexts
            && !(1..=MAX_CONTEXTS).contains(&max)
        {
            return Err(Error::parameter(
                "max_contexts",
                max,
                format!("in [1, {MAX_CONTEXTS}], or None for unbounded"),
            ));
        }
        self.policy
            .initial_state(self.models.len(), self.prior_in_range().as_deref())
    }

    /// The prior, divided by its largest value if its sum overflows: the automaton reads it as
    /// relative weights, and {a: 1e308, b: 1e308} would otherwise normalize to zeros, off the
    /// simplex. Only then, so every prior that worked before gives the same bits.
    fn prior_in_range(&self) -> Option<Vec<f64>> {
        let prior = self.prior.as_ref()?;
        if !matches!(self.policy, Policy::LearningAutomaton(_)) || prior.iter().sum::<f64>().is_finite() {
            return Some(prior.clone());
        }
        let largest = prior.iter().copied().fold(0.0, f64::max);
        Some(prior.iter().map(|w| w / largest).collect())
    }
}

/// One decision as `select` returns it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Selection {
    pub id: u64,
    pub arm: usize,
    pub probability: f64,
    /// Index of the decision's context in the router's table.
    pub context: u32,
}

#[derive(Clone, Debug)]
pub struct Router {
    pub(crate) config: Config,
    pub(crate) model_index: HashMap<String, u32>,
    pub(crate) fresh: State,
    pub(crate) contexts: Contexts,
    /// What all contexts have learned, pooled (see [`Evidence`]).
    pub(crate) evidence: Evidence,
    pub(crate) ledger: Ledger,
    pub(crate) rng: Rng,
    /// Feedbacks learned without a decision of this router (`observe`, `restore_learned`):
    /// with the decisions issued, they bound the feedback counts a snapshot may hold.
    pub(crate) observed: u64,
    /// Random, written on every decision (see [`identity`]).
    pub(crate) identity: u64,
    /// Changes the policy's detector found, each restarting a context (snapshots keep it).
    pub(crate) changes: u64,
    /// The slot of the last selection's context (`u32::MAX` before the first): a hint, checked
    /// by name before use, so it never needs to follow evictions, restores or forks.
    pub(crate) last_selected: u32,
}

/// Two routers are equal when they would behave the same: slot numbers are how contexts are
/// stored, so pending decisions are compared by their context's name (`None` once evicted).
impl PartialEq for Router {
    fn eq(&self, other: &Self) -> bool {
        let decisions = |router: &Router| {
            router
                .ledger
                .pending()
                .into_iter()
                .map(|p| {
                    let context = (router.contexts.generation(p.context) == Some(p.generation))
                        .then(|| router.contexts.name(p.context))
                        .flatten()
                        .map(str::to_owned);
                    (p.id, context, p.arm, p.probability)
                })
                .collect::<Vec<_>>()
        };
        self.config == other.config
            && self.rng == other.rng
            && self.identity == other.identity
            && self.contexts == other.contexts
            && self.ledger.capacity() == other.ledger.capacity()
            && self.ledger.next_id() == other.ledger.next_id()
            && decisions(self) == decisions(other)
    }
}

impl Router {
    /// A router whose every decision is fixed by `config`, `seed` and the feedback it receives.
    ///
    /// ```
    /// use _core::automaton::AutomatonConfig;
    /// use _core::learner::Policy;
    /// use _core::reward::{Observation, Reward};
    /// use _core::router::{Config, Router};
    /// use _core::subset::Subset;
    ///
    /// let config = Config {
    ///     models: vec!["big".into(), "small".into()],
    ///     policy: Policy::LearningAutomaton(AutomatonConfig { learning_rate: 0.1, threshold: 0.99, lock: true }),
    ///     reward: Reward::default(),
    ///     prior: None,
    ///     max_pending: 1000,
    ///     default_context: "default".into(),
    ///     max_contexts: Some(100_000),
    /// };
    /// let mut router = Router::new(config, 7).unwrap();
    /// let decision = router.select(Some("finance"), Subset::ALL).unwrap();
    /// let model = router.config().models[decision.arm].clone();
    /// let reward = router.feedback(decision.id, &model, "finance", Observation::new(1.0, 0.002, 1.2).unwrap()).unwrap();
    /// assert!((0.0..=1.0).contains(&reward));
    /// ```
    pub fn new(config: Config, seed: u64) -> Result<Self> {
        let fresh = config.validate()?;
        let models = config.models.len();
        let model_index = config
            .models
            .iter()
            .zip(0u32..)
            .map(|(name, i)| (name.clone(), i))
            .collect();
        let ledger = Ledger::new(config.max_pending)?;
        let max_contexts = config.max_contexts;
        Ok(Router {
            config,
            model_index,
            fresh,
            contexts: Contexts::new(max_contexts),
            evidence: Evidence::new(models),
            ledger,
            rng: Rng::seed_from_u64(seed),
            observed: 0,
            identity: identity::fresh(),
            changes: 0,
            last_selected: u32::MAX,
        })
    }

    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn model_index(&self, name: &str) -> Result<usize> {
        self.model_index
            .get(name)
            .map(|&i| i as usize)
            .ok_or_else(|| Error::UnknownModel(name.to_owned()))
    }

    /// This router's random id, written on its decisions (see [`identity`]).
    #[must_use]
    pub fn identity(&self) -> u64 {
        self.identity
    }

    /// Refuse decision `id` unless router `issuer` is this one.
    pub fn check_issuer(&self, issuer: u64, id: u64) -> Result<()> {
        if issuer == self.identity {
            return Ok(());
        }
        Err(Error::Decision {
            id,
            problem: DecisionProblem::Foreign {
                issuer,
                router: self.identity,
            },
        })
    }

    /// Pick a model for `context` (the default context when `None`) among `subset`.
    pub fn select(&mut self, context: Option<&str>, subset: Subset<'_>) -> Result<Selection> {
        // Checked before the context is created, so a rejected call changes nothing.
        if subset.count(self.config.models.len()) == 0 {
            return Err(Error::NoEligibleModel);
        }
        if self.ledger.next_id() >= MAX_NEXT_ID {
            return Err(Error::parameter(
                "decision ids",
                self.ledger.next_id(),
                "below 2^63: this router has issued every id it can; start a new one",
            ));
        }
        let name = context.unwrap_or(&self.config.default_context);
        // Selections come in runs for one context (a session, a tenant): if the last one's slot
        // still holds this name, it is this context (names are unique), found without hashing.
        let index = if self.contexts.name(self.last_selected) == Some(name) {
            self.last_selected
        } else {
            let fresh = &self.fresh;
            self.contexts
                .get_or_insert(name, || Learner::new(fresh.clone()))
                .ok_or_else(|| Error::parameter("context", name, "one of at most 2^32 contexts"))?
        };
        self.last_selected = index;
        // `let else` rather than `ok_or`: an eagerly built error costs a drop on every call.
        let Some(learner) = self.contexts.learner(index) else {
            return Err(Error::NoEligibleModel);
        };
        let query = Query::pooled(subset, &self.evidence);
        let (arm, probability) = learner.select(&self.config.policy, query, &mut self.rng)?;
        // arm < models.len() < 2^32 (checked at construction), so the cast cannot truncate.
        let generation = self.contexts.generation(index).unwrap_or(0);
        let id = self.ledger.issue(index, generation, arm as u32, probability);
        Ok(Selection {
            id,
            arm,
            probability,
            context: index,
        })
    }

    /// Apply the outcome of decision `id`, which the caller says chose `model` in `context`.
    /// Returns the reward used. Everything is checked before anything changes.
    ///
    /// If the decision's context was evicted since (see `Config::max_contexts`), its name is
    /// gone with it, so `context` cannot be checked: the feedback settles into the context of
    /// that name, re-created from the prior if it is absent.
    pub fn feedback(&mut self, id: u64, model: &str, context: &str, observation: Observation) -> Result<f64> {
        let (pending, reward, index) = self.redeem(id, model, context, observation, true)?;
        self.learn(index, pending.arm as usize, reward, pending.probability);
        Ok(reward)
    }

    /// Settle decision `id` like [`Router::feedback`] but without learning from it: a replica
    /// sharing its state learns from the event once it reads it back from the shared log, in
    /// the log's order, exactly like every other replica (see [`Router::observe`]).
    pub fn settle(&mut self, id: u64, model: &str, context: &str, observation: Observation) -> Result<f64> {
        self.redeem(id, model, context, observation, false)
            .map(|(_, reward, _)| reward)
    }

    /// Check decision `id` against what the caller says it chose, compute the reward and retire
    /// the decision; nothing changes unless every check passes. Returns the decision, the reward
    /// and the slot of its context; a context evicted since is re-created by name first if the
    /// decision is to `learn` (see [`Router::feedback`]).
    fn redeem(
        &mut self,
        id: u64,
        model: &str,
        context: &str,
        observation: Observation,
        learn: bool,
    ) -> Result<(Pending, f64, u32)> {
        let (slot, pending) = self.ledger.find(id)?;
        let mismatch = |field, expected: &str, got: &str| Error::Decision {
            id,
            problem: DecisionProblem::Mismatch {
                field,
                expected: expected.to_owned(),
                got: got.to_owned(),
            },
        };
        let issued_model = self.config.models.get(pending.arm as usize).map_or("", String::as_str);
        if issued_model != model {
            return Err(mismatch("model", issued_model, model));
        }
        let present = self.contexts.generation(pending.context) == Some(pending.generation);
        // Names are unique, so comparing with the decision's context name is the same check as
        // looking `context` up, without hashing it.
        if present {
            let issued_context = self.contexts.name(pending.context).unwrap_or("");
            if issued_context != context {
                return Err(mismatch("context", issued_context, context));
            }
        }
        let reward = self.finite_reward(observation)?;
        let index = if present || !learn {
            pending.context
        } else {
            let fresh = &self.fresh;
            self.contexts
                .get_or_insert_for_learning(context, || Learner::new(fresh.clone()))
                .ok_or_else(|| Error::parameter("context", context, "one of at most 2^32 contexts"))?
        };
        if present && self.contexts.learner(index).is_none() {
            return Err(Error::Decision {
                id,
                problem: DecisionProblem::NeverIssued,
            });
        }
        self.ledger.consume_slot(slot, id);
        Ok((pending, reward, index))
    }

    /// Learn from an outcome that no pending decision of this router stands for: an event of the
    /// shared log, or a line of an imported log. `model` chose in `context` (created if new) with
    /// `probability` (the propensity; `None` when unknown). Returns the reward used. Learned
    /// state depends only on the sequence of observations, never on this router's selections or
    /// random generator, so routers fed the same observations in the same order agree exactly.
    pub fn observe(
        &mut self,
        context: &str,
        model: &str,
        observation: Observation,
        probability: Option<f64>,
    ) -> Result<f64> {
        let (arm, reward) = self.assess(model, observation, probability)?;
        let index = self.slot_for_learning(context)?;
        let Some(learner) = self.contexts.learner(index) else {
            return Err(Error::parameter("context", context, "a context of this router"));
        };
        // Without a known propensity, the probability the learner gives the model now: it is a
        // function of the learned state, so every replica uses the same one.
        let propensity = probability.unwrap_or_else(|| {
            learner.probabilities(&self.config.policy, Some(&self.evidence))[arm].max(f64::MIN_POSITIVE)
        });
        self.learn(index, arm, reward, propensity);
        self.observed = self.observed.saturating_add(1);
        Ok(reward)
    }

    /// The slot of `context` for learning, created (from the prior) if new.
    fn slot_for_learning(&mut self, context: &str) -> Result<u32> {
        let fresh = &self.fresh;
        self.contexts
            .get_or_insert_for_learning(context, || Learner::new(fresh.clone()))
            .ok_or_else(|| Error::parameter("context", context, "one of at most 2^32 contexts"))
    }

    /// Learn in `context` from an outcome this router has already learned from in another
    /// context: a prompt-context warm-up decision's feedback, learned in the warm-up context,
    /// then credited to its prompt's cluster. Like [`Router::observe`] with a known
    /// `probability`, except that the pooled evidence (the `share` prior), which holds the
    /// outcome already, does not record it again: counted twice, one unlucky warm-up answer
    /// would weigh as two in every context's prior.
    pub fn credit(&mut self, context: &str, model: &str, observation: Observation, probability: f64) -> Result<f64> {
        let (arm, reward) = self.assess(model, observation, Some(probability))?;
        let index = self.slot_for_learning(context)?;
        self.learn_in(index, arm, reward, probability, false);
        self.observed = self.observed.saturating_add(1);
        Ok(reward)
    }

    /// Check an observation as [`Router::observe`] does, without learning from it: the model's
    /// index and the reward. A replica sharing its state learns from it from the shared log.
    pub fn assess(&self, model: &str, observation: Observation, probability: Option<f64>) -> Result<(usize, f64)> {
        let arm = self.model_index(model)?;
        if let Some(p) = probability
            && !(p > 0.0 && p <= 1.0)
        {
            return Err(Error::InvalidObservation {
                field: "probability",
                value: p,
                expected: "in (0, 1]",
            });
        }
        Ok((arm, self.finite_reward(observation)?))
    }

    fn finite_reward(&self, observation: Observation) -> Result<f64> {
        let reward = self.config.reward.compute(observation);
        if !reward.is_finite() {
            // Validation makes this unreachable; a NaN would corrupt the learner for good.
            return Err(Error::InvalidObservation {
                field: "reward",
                value: reward,
                expected: "a finite number",
            });
        }
        Ok(reward)
    }

    /// Apply one feedback event to context `context`'s learner and to the pooled evidence: the
    /// single path every event takes (a decision's feedback, or an imported observation), so
    /// that learned state is the same function of the ordered events everywhere. `reward` is in
    /// [0, 1], `propensity` the probability the model had of being chosen, in (0, 1].
    pub(crate) fn learn(&mut self, context: u32, arm: usize, reward: f64, propensity: f64) {
        self.learn_in(context, arm, reward, propensity, true);
    }

    /// [`Router::learn`], recording the pooled evidence only if `pooled` (see
    /// [`Router::credit`]).
    fn learn_in(&mut self, context: u32, arm: usize, reward: f64, propensity: f64, pooled: bool) {
        if let Some(learner) = self.contexts.learner_mut(context) {
            if learner.learn(&self.config.policy, arm, reward, propensity) {
                self.changes = self.changes.saturating_add(1);
            }
            if pooled {
                self.evidence.record(arm, reward, self.config.policy.discount());
            }
            // Every learning event (feedback, observe) orders the contexts `max_contexts` keeps.
            self.contexts.learned_at(context);
        }
    }

    /// The distribution `select` would draw from in `context` (a fresh learner's if unseen).
    #[must_use]
    pub fn probabilities(&self, context: &str) -> Vec<f64> {
        let policy = &self.config.policy;
        self.contexts.get(context).map_or_else(
            || Learner::new(self.fresh.clone()).probabilities(policy, Some(&self.evidence)),
            |learner| learner.probabilities(policy, Some(&self.evidence)),
        )
    }

    /// The model `context` has converged to, if it has.
    #[must_use]
    pub fn converged(&self, context: &str) -> Option<usize> {
        self.contexts
            .get(context)
            .and_then(|learner| learner.converged(&self.config.policy))
    }

    /// Applied feedbacks per model in `context` (zeros if unseen).
    #[must_use]
    pub fn feedback_counts(&self, context: &str) -> Vec<u64> {
        self.contexts
            .get(context)
            .map_or_else(|| vec![0; self.config.models.len()], |l| l.feedbacks.clone())
    }

    /// Context names: learned ones least recently learned first, then those that have not
    /// learned yet, oldest first (the order in which `max_contexts` lets them go).
    #[must_use]
    pub fn contexts(&self) -> Vec<&str> {
        self.contexts.names()
    }

    /// How many contexts are held, and how many were let go.
    #[must_use]
    pub fn context_counts(&self) -> Counts {
        self.contexts.counts()
    }

    /// Changes the policy's change detector has found since the router was created, each of
    /// which restarted its context's learner.
    #[must_use]
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// How many decisions still await feedback.
    #[must_use]
    pub fn pending(&self) -> usize {
        self.ledger.live()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::automaton::AutomatonConfig;
    use crate::q_learning::{QConfig, StepSize};

    pub(crate) fn config(policy: Policy) -> Config {
        Config {
            models: vec!["a".into(), "b".into(), "c".into()],
            policy,
            reward: Reward::default(),
            prior: None,
            max_pending: 8,
            default_context: "default".into(),
            max_contexts: None,
        }
    }

    pub(crate) fn automaton() -> Policy {
        Policy::LearningAutomaton(AutomatonConfig {
            learning_rate: 0.2,
            threshold: 0.95,
            lock: true,
        })
    }

    fn q() -> Policy {
        Policy::QLearning(QConfig {
            learning_rate: StepSize::Constant(0.2),
            epsilon: 0.3,
            epsilon_decay: 0.95,
            epsilon_min: 0.01,
            patience: 10,
            share: 0.0,
            lock: true,
        })
    }

    fn good() -> Observation {
        Observation::new(1.0, 0.0, 0.0).unwrap()
    }

    #[test]
    fn select_feedback_cycle_and_rejections_leave_state_intact() {
        let mut router = Router::new(config(automaton()), 1).unwrap();
        let d = router.select(Some("x"), Subset::ALL).unwrap();
        let model = router.config.models[d.arm].clone();
        let other = router.config.models[(d.arm + 1) % 3].clone();
        let before = router.clone();
        assert!(matches!(
            router.feedback(d.id, &other, "x", good()),
            Err(Error::Decision { .. })
        ));
        assert!(matches!(
            router.feedback(d.id, &model, "y", good()),
            Err(Error::Decision { .. })
        ));
        assert!(matches!(
            router.feedback(d.id + 1, &model, "x", good()),
            Err(Error::Decision { .. })
        ));
        assert_eq!(router, before);
        assert_eq!(router.feedback(d.id, &model, "x", good()).unwrap(), 1.0);
        let after = router.clone();
        assert!(matches!(
            router.feedback(d.id, &model, "x", good()),
            Err(Error::Decision { .. })
        ));
        assert_eq!(router, after);
        assert_eq!(router.feedback_counts("x").iter().sum::<u64>(), 1);
    }

    #[test]
    fn a_sibling_routers_decisions_are_refused() {
        let mut router = Router::new(config(automaton()), 1).unwrap();
        let sibling = Router::new(config(automaton()), 1).unwrap();
        assert_ne!(router.identity(), sibling.identity());
        let d = router.select(Some("x"), Subset::ALL).unwrap();
        assert!(router.check_issuer(router.identity(), d.id).is_ok());
        let error = sibling.check_issuer(router.identity(), d.id).unwrap_err();
        assert!(error.to_string().contains("another router"), "{error}");
    }

    #[test]
    fn decision_ids_never_overflow() {
        let mut router = Router::new(config(automaton()), 1).unwrap();
        router.ledger = Ledger::from_parts(8, MAX_NEXT_ID - 1, &[]).unwrap();
        assert!(router.select(Some("x"), Subset::ALL).is_ok());
        let before = router.clone();
        let error = router.select(Some("y"), Subset::ALL).unwrap_err().to_string();
        assert!(error.contains("every id"), "{error}");
        assert_eq!(router, before, "a refused select changes nothing");
    }

    #[test]
    fn empty_subset_changes_nothing() {
        let mut router = Router::new(config(automaton()), 1).unwrap();
        let before = router.clone();
        let mask = [false; 3];
        assert_eq!(
            router.select(Some("new"), Subset(Some(&mask))),
            Err(Error::NoEligibleModel)
        );
        assert_eq!(router, before);
    }

    #[test]
    fn same_seed_same_decisions_for_both_policies() {
        for policy in [automaton(), q()] {
            let run = |seed| {
                let mut router = Router::new(config(policy.clone()), seed).unwrap();
                (0..300)
                    .map(|i| {
                        let d = router
                            .select(Some(if i % 2 == 0 { "p" } else { "q" }), Subset::ALL)
                            .unwrap();
                        let model = router.config.models[d.arm].clone();
                        let ctx = if i % 2 == 0 { "p" } else { "q" };
                        let accuracy = if d.arm == 2 { 1.0 } else { 0.2 };
                        router
                            .feedback(d.id, &model, ctx, Observation::new(accuracy, 0.0, 0.0).unwrap())
                            .unwrap();
                        d.arm
                    })
                    .collect::<Vec<_>>()
            };
            assert_eq!(run(5), run(5));
            assert_ne!(run(5), run(6));
        }
    }

    #[test]
    fn converges_to_the_rewarded_model() {
        for policy in [automaton(), q()] {
            let mut router = Router::new(config(policy), 3).unwrap();
            for _ in 0..2000 {
                let d = router.select(None, Subset::ALL).unwrap();
                let model = router.config.models[d.arm].clone();
                let accuracy = if d.arm == 1 { 1.0 } else { 0.0 };
                router
                    .feedback(d.id, &model, "default", Observation::new(accuracy, 0.0, 10.0).unwrap())
                    .unwrap();
            }
            assert_eq!(router.converged("default"), Some(1));
        }
    }

    #[test]
    fn huge_priors_stay_on_the_simplex_and_snapshot() {
        let mut c = config(automaton());
        c.prior = Some(vec![1e308, 1e308, f64::MAX]);
        let mut router = Router::new(c, 0).unwrap();
        let p = router.probabilities("any");
        assert!(
            p.iter().all(|&x| x > 0.0) && (p.iter().sum::<f64>() - 1.0).abs() < 1e-12,
            "{p:?}"
        );
        assert_eq!(
            Router::restore(&router.snapshot().unwrap())
                .unwrap()
                .probabilities("any"),
            p
        );
        // Q-learning reads the prior as values in [0, 1]: huge ones stay refused.
        let mut c = config(q());
        c.prior = Some(vec![1e308, 1e308, 1e308]);
        assert!(Router::new(c, 0).unwrap_err().to_string().contains("[0, 1]"));
    }

    fn bounded(max: u32) -> Router {
        let mut c = config(automaton());
        c.max_contexts = Some(max);
        c.max_pending = 100;
        Router::new(c, 4).unwrap()
    }

    fn settle(router: &mut Router, d: Selection, context: &str) -> Result<f64> {
        let model = router.config.models[d.arm].clone();
        router.feedback(d.id, &model, context, good())
    }

    #[test]
    fn decisions_whose_context_was_evicted_settle_into_it_by_name() {
        let mut router = bounded(2);
        let early = router.select(Some("a"), Subset::ALL).unwrap();
        // Two selections that never learn drop "a" (never learned), and one reuses its slot.
        router.select(Some("v1"), Subset::ALL).unwrap();
        router.select(Some("v2"), Subset::ALL).unwrap();
        for name in ["b", "c", "d"] {
            let d = router.select(Some(name), Subset::ALL).unwrap();
            settle(&mut router, d, name).unwrap();
        }
        assert!(router.contexts.index_of("a").is_none());
        assert_eq!(router.contexts(), vec!["c", "d", "v2"]);
        assert_eq!(settle(&mut router, early, "a").unwrap(), 1.0);
        assert_eq!(router.feedback_counts("a").iter().sum::<u64>(), 1);
        assert_eq!(router.contexts(), vec!["d", "a", "v2"]);
        // Settled exactly once.
        assert!(matches!(settle(&mut router, early, "a"), Err(Error::Decision { .. })));
        let counts = router.context_counts();
        assert_eq!(
            (counts.learned, counts.unlearned, counts.evicted, counts.dropped),
            (2, 1, 2, 2)
        );
        // The snapshot keeps the order and the counts, and a decision pending on an evicted
        // context still settles after a restore.
        let late = router.select(Some("d"), Subset::ALL).unwrap();
        let e = router.select(Some("e"), Subset::ALL).unwrap();
        settle(&mut router, e, "e").unwrap(); // evicts "d", with `late` pending on it
        let mut restored = Router::restore(&router.snapshot().unwrap()).unwrap();
        assert_eq!(restored, router);
        assert_eq!(restored.contexts(), vec!["a", "e", "v2"]);
        assert_eq!(restored.context_counts(), router.context_counts());
        assert_eq!(settle(&mut restored, late, "d").unwrap(), 1.0);
        assert_eq!(restored.contexts(), vec!["e", "d", "v2"]);
        assert_eq!(restored.context_counts().evicted, 4);
    }

    #[test]
    fn selections_never_evict_learned_contexts() {
        let mut router = bounded(3);
        for name in ["a", "b", "c"] {
            let d = router.select(Some(name), Subset::ALL).unwrap();
            settle(&mut router, d, name).unwrap();
        }
        for i in 0..1000 {
            router.select(Some(&format!("visitor-{i}")), Subset::ALL).unwrap();
        }
        let counts = router.context_counts();
        assert_eq!(
            (counts.learned, counts.unlearned, counts.evicted, counts.dropped),
            (3, 3, 0, 997)
        );
        assert_eq!(&router.contexts()[..3], ["a", "b", "c"]);
    }

    #[test]
    fn invalid_configs_are_rejected() {
        for max in [0, MAX_CONTEXTS + 1] {
            let mut c = config(automaton());
            c.max_contexts = Some(max);
            assert!(Router::new(c, 0).unwrap_err().to_string().contains("max_contexts"));
        }
        let mut c = config(automaton());
        c.models = vec![];
        assert!(Router::new(c, 0).is_err());
        let mut c = config(automaton());
        c.models = vec!["a".into(), "a".into()];
        assert!(Router::new(c, 0).unwrap_err().to_string().contains("unique"));
        let mut c = config(automaton());
        c.max_pending = 0;
        assert!(Router::new(c, 0).is_err());
        let mut c = config(automaton());
        c.prior = Some(vec![1.0, 2.0]);
        assert!(Router::new(c, 0).is_err());
    }

    /// `credit` learns in its context as `observe` does, but leaves the pooled evidence alone
    /// (the outcome was pooled when first learned); bad input changes nothing.
    #[test]
    fn credit_learns_in_its_context_without_pooling_again() {
        let mut observed = Router::new(config(q()), 3).unwrap();
        observed.observe("warm", "b", good(), Some(0.5)).unwrap();
        let mut credited = observed.clone();
        observed.observe("cluster", "b", good(), Some(0.5)).unwrap();
        credited.credit("cluster", "b", good(), 0.5).unwrap();
        assert_eq!(credited.feedback_counts("cluster"), observed.feedback_counts("cluster"));
        assert_eq!(credited.evidence.counts, vec![0.0, 1.0, 0.0], "pooled once");
        assert_eq!(observed.evidence.counts, vec![0.0, 2.0, 0.0]);
        let before = credited.clone();
        assert!(credited.credit("cluster", "z", good(), 0.5).is_err());
        assert!(credited.credit("cluster", "b", good(), 0.0).is_err());
        assert!(credited == before);
    }

    /// The last-context hint must never change a decision: a router that forgets it before
    /// every selection (so always hashes the name) decides and learns exactly the same, through
    /// runs, switches, the default context and evictions that reuse the hinted slot.
    #[test]
    fn the_last_context_hint_changes_nothing() {
        for policy in [automaton(), q()] {
            let mut c = config(policy);
            c.max_contexts = Some(2);
            let mut hinted = Router::new(c, 11).unwrap();
            let mut hashed = hinted.clone();
            let names = ["a", "b", "c", "d"];
            let mut draw = 7_u64;
            for step in 0..3_000 {
                draw = draw
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                // Runs of one context, switches, and now and then the default context.
                let pick = (draw >> 33) as usize % 12;
                let context = names.get(pick / 3).copied().filter(|_| step % 17 != 0);
                hashed.last_selected = u32::MAX;
                let (x, y) = (hinted.select(context, Subset::ALL), hashed.select(context, Subset::ALL));
                assert_eq!(x.as_ref().ok(), y.as_ref().ok());
                let Ok(d) = x else { continue };
                if !(draw >> 40).is_multiple_of(4) {
                    let model = hinted.config.models[d.arm].clone();
                    let name = context.unwrap_or("default");
                    let accuracy = ((draw >> 50) % 2) as f64;
                    let observation = Observation::new(accuracy, 0.0, 0.0).unwrap();
                    let (x, y) = (
                        hinted.feedback(d.id, &model, name, observation),
                        hashed.feedback(d.id, &model, name, observation),
                    );
                    assert_eq!(x.ok().map(f64::to_bits), y.ok().map(f64::to_bits));
                }
            }
            assert!(hinted.context_counts().evicted + hinted.context_counts().dropped > 0);
            assert!(hinted == hashed);
            assert_eq!(
                hinted.capture_learned().encode().unwrap(),
                hashed.capture_learned().encode().unwrap()
            );
        }
    }
}
