//! The learned part of a router alone: every context's learner, by name, without the generator,
//! the pending decisions or the configuration. Replicas that applied the same feedback events in
//! the same order hold equal learned parts whatever they selected, so it is what shared-state
//! checkpoints store and what tests compare.
//!
//! JSON: `{"contexts": {"<name>": <learner>, ...}, "evidence": <pooled evidence>}`, names
//! sorted, and only contexts that learned something (a context a replica merely selected in is
//! still fresh and left out). The pooled evidence (`learner::Evidence`) is learned state too.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::learner::{Evidence, Learner};
use crate::router::Router;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Learned {
    contexts: BTreeMap<String, Learner>,
    /// Absent from learned parts written before learners pooled evidence: none.
    #[serde(default)]
    evidence: Evidence,
}

impl Router {
    /// The learned part as JSON bytes; [`Router::restore_learned`] installs it in a router with
    /// the same configuration.
    pub fn learned(&self) -> Result<Vec<u8>> {
        let fresh = Learner::new(self.fresh.clone());
        let contexts = self
            .contexts
            .iter()
            .filter(|(_, learner)| **learner != fresh)
            .map(|(name, learner)| (name.to_owned(), learner.clone()))
            .collect();
        let evidence = self.evidence.clone();
        serde_json::to_vec(&Learned { contexts, evidence }).map_err(|e| Error::snapshot(format!("cannot encode: {e}")))
    }

    /// Replace every learner by the one [`Router::learned`] gave (contexts it does not name
    /// start afresh); the generator and pending decisions stay. Everything is validated first:
    /// on error nothing changes.
    pub fn restore_learned(&mut self, bytes: &[u8]) -> Result<()> {
        let learned: Learned =
            serde_json::from_slice(bytes).map_err(|e| Error::snapshot(format!("learned state: {e}")))?;
        let models = self.config.models.len();
        let evidence = if learned.evidence == Evidence::default() {
            Evidence::new(models)
        } else {
            learned.evidence.validate(models)?;
            learned.evidence
        };
        for (name, learner) in &learned.contexts {
            learner
                .validate(&self.config.policy, models)
                .map_err(|e| Error::snapshot(format!("context {name:?}: {e}")))?;
        }
        let names: Vec<String> = self.contexts.names().into_iter().map(str::to_owned).collect();
        if names.len().saturating_add(learned.contexts.len()) > u32::MAX as usize {
            return Err(Error::snapshot("more contexts than a router can hold"));
        }
        let mut total: u64 = 0;
        for name in names {
            if !learned.contexts.contains_key(&name)
                && let Some(slot) = self.contexts.index_of(&name).and_then(|i| self.contexts.learner_mut(i))
            {
                *slot = Learner::new(self.fresh.clone());
            }
        }
        for (name, learner) in learned.contexts {
            total = learner.feedbacks.iter().fold(total, |sum, &n| sum.saturating_add(n));
            let fresh = &self.fresh;
            let mut learner = Some(learner);
            if let Some(index) = self
                .contexts
                .get_or_insert(&name, || learner.take().unwrap_or_else(|| Learner::new(fresh.clone())))
                && let (Some(slot), Some(learner)) = (self.contexts.learner_mut(index), learner)
            {
                *slot = learner;
            }
        }
        // Installed counts were learned elsewhere; they answer to no decision of this router.
        self.observed = total;
        self.evidence = evidence;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::automaton::AutomatonConfig;
    use crate::learner::Policy;
    use crate::q_learning::{QConfig, StepSize};
    use crate::reward::{Observation, Reward};
    use crate::router::{Config, Router};
    use crate::subset::Subset;

    fn config(policy: Policy) -> Config {
        Config {
            models: vec!["a".into(), "b".into(), "c".into()],
            policy,
            reward: Reward::default(),
            prior: None,
            max_pending: 8,
            default_context: "default".into(),
        }
    }

    fn policies() -> [Policy; 2] {
        [
            Policy::LearningAutomaton(AutomatonConfig {
                learning_rate: 0.2,
                threshold: 0.95,
                lock: true,
            }),
            Policy::QLearning(QConfig {
                learning_rate: StepSize::Constant(0.2),
                epsilon: 0.3,
                epsilon_decay: 0.95,
                epsilon_min: 0.01,
                patience: 10,
                lock: true,
            }),
        ]
    }

    fn events() -> Vec<(&'static str, &'static str, f64)> {
        (0..200)
            .map(|i| {
                let context = ["x", "y", "z"][i % 3];
                let model = ["a", "b", "c"][(i * 7) % 3];
                (context, model, if i % 5 == 0 { 1.0 } else { 0.3 })
            })
            .collect()
    }

    #[test]
    fn same_events_same_learned_state_whatever_was_selected() {
        for policy in policies() {
            let mut one = Router::new(config(policy.clone()), 1).unwrap();
            let mut two = Router::new(config(policy), 99).unwrap();
            // Selections (and settled decisions) on one replica only: they must not show.
            for context in ["w", "z", "x"] {
                let d = two.select(Some(context), Subset::ALL).unwrap();
                let model = two.config().models[d.arm].clone();
                two.settle(d.id, &model, context, Observation::new(1.0, 0.0, 0.0).unwrap())
                    .unwrap();
            }
            for (context, model, accuracy) in events() {
                let observation = Observation::new(accuracy, 0.0, 0.0).unwrap();
                let r1 = one.observe(context, model, observation, Some(0.5)).unwrap();
                let r2 = two.observe(context, model, observation, None).unwrap();
                assert_eq!(r1, r2);
            }
            assert_eq!(one.learned().unwrap(), two.learned().unwrap());
            assert_eq!(one.feedback_counts("x").iter().sum::<u64>(), 67);
            assert_eq!(two.feedback_counts("w"), vec![0, 0, 0], "settle does not learn");
        }
    }

    #[test]
    fn restore_learned_round_trips_and_refuses_bad_input_unchanged() {
        for policy in policies() {
            let mut source = Router::new(config(policy.clone()), 1).unwrap();
            for (context, model, accuracy) in events() {
                source
                    .observe(context, model, Observation::new(accuracy, 0.0, 0.0).unwrap(), None)
                    .unwrap();
            }
            let mut target = Router::new(config(policy), 2).unwrap();
            target.select(Some("only-here"), Subset::ALL).unwrap();
            target
                .observe("only-here", "a", Observation::new(1.0, 0.0, 0.0).unwrap(), None)
                .unwrap();
            let before = target.clone();
            assert!(target.restore_learned(b"{\"contexts\": 3}").is_err());
            assert!(target.restore_learned(b"{\"contexts\": {\"x\": {}}}").is_err());
            assert_eq!(target, before);
            target.restore_learned(&source.learned().unwrap()).unwrap();
            assert_eq!(target.learned().unwrap(), source.learned().unwrap());
            assert_eq!(target.pending(), 1, "pending decisions stay");
            // A snapshot of the result restores: counts learned elsewhere are accounted for.
            let restored = Router::restore(&target.snapshot().unwrap()).unwrap();
            assert_eq!(restored.learned().unwrap(), source.learned().unwrap());
        }
    }

    #[test]
    fn observe_rejects_bad_input_unchanged() {
        let mut router = Router::new(config(policies()[0].clone()), 1).unwrap();
        let good = Observation::new(1.0, 0.0, 0.0).unwrap();
        let before = router.clone();
        assert!(router.observe("x", "nope", good, None).is_err());
        for p in [0.0, -0.1, 1.5, f64::NAN] {
            assert!(router.observe("x", "a", good, Some(p)).is_err());
        }
        assert_eq!(router, before);
        assert!(router.observe("x", "a", good, Some(1.0)).is_ok());
    }
}
