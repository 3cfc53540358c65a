//! The learned part of a router alone: every context's learner, by name, without the generator,
//! the pending decisions or the configuration. Replicas that applied the same feedback events in
//! the same order hold equal learned parts whatever they selected, so it is what shared-state
//! checkpoints store and what tests compare.
//!
//! JSON: `{"contexts": {"<name>": <learner>, ...}, "evidence": <pooled evidence>}`, only
//! contexts that learned something (a context a replica merely selected in is still fresh and
//! left out), least recently learned first: the order in which `max_contexts` evicts them, which
//! is itself learned state (it depends only on the ordered events), so a replica starting from a
//! checkpoint evicts exactly as the others do. The pooled evidence (`learner::Evidence`) is
//! learned state too.

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::contexts::Shared;
use crate::error::{Error, Result};
use crate::learner::{Evidence, Learner};
use crate::router::{Config, Router};

#[derive(Serialize)]
struct LearnedOut<'a> {
    contexts: InOrder<'a>,
    evidence: &'a Evidence,
}

/// `(name, learner)` pairs written as one JSON object, keys in the given order.
struct InOrder<'a>(Vec<(&'a str, &'a Learner)>);

impl Serialize for InOrder<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().copied())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Learned {
    #[serde(deserialize_with = "in_order")]
    contexts: Vec<(String, Learner)>,
    /// Absent from learned parts written before learners pooled evidence: none.
    #[serde(default)]
    evidence: Evidence,
}

/// A JSON object's entries in the order written; a repeated name is refused.
fn in_order<'de, D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Vec<(String, Learner)>, D::Error> {
    struct Entries;
    impl<'de> Visitor<'de> for Entries {
        type Value = Vec<(String, Learner)>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object of learners by context name")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Self::Value, A::Error> {
            let mut entries: Vec<(String, Learner)> = Vec::new();
            let mut seen = std::collections::HashSet::new();
            while let Some((name, learner)) = map.next_entry::<String, Learner>()? {
                if !seen.insert(name.clone()) {
                    return Err(serde::de::Error::custom(format!("context {name:?} appears twice")));
                }
                entries.push((name, learner));
            }
            Ok(entries)
        }
    }
    deserializer.deserialize_map(Entries)
}

/// The learned part of a router at one moment, taken under its lock in microseconds (the
/// contexts' chunks are shared copy-on-write, see `chunked.rs`) and encoded later without the
/// lock or the interpreter: a shared-state checkpoint of a large router then pauses nobody.
pub struct LearnedCapture {
    contexts: Shared,
    evidence: Evidence,
}

impl LearnedCapture {
    /// The learned part as JSON bytes, exactly as [`Router::learned`] writes it.
    pub fn encode(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(&LearnedOut {
            contexts: InOrder(self.contexts.learned().collect()),
            evidence: &self.evidence,
        })
        .map_err(|e| Error::snapshot(format!("cannot encode: {e}")))
    }
}

/// A learned part parsed and validated against a configuration, ready to install: the slow
/// part of [`Router::restore_learned`], which needs no router (so no lock).
pub struct ParsedLearned {
    contexts: Vec<(String, Learner)>,
    evidence: Evidence,
}

impl ParsedLearned {
    /// Parse `bytes` (from [`Router::learned`]) for routers configured as `config`.
    pub fn parse(bytes: &[u8], config: &Config) -> Result<Self> {
        let learned: Learned =
            serde_json::from_slice(bytes).map_err(|e| Error::snapshot(format!("learned state: {e}")))?;
        let models = config.models.len();
        let evidence = if learned.evidence == Evidence::default() {
            Evidence::new(models)
        } else {
            learned.evidence.validate(models)?;
            learned.evidence
        };
        for (name, learner) in &learned.contexts {
            learner
                .validate(&config.policy, models)
                .map_err(|e| Error::snapshot(format!("context {name:?}: {e}")))?;
        }
        Ok(ParsedLearned {
            contexts: learned.contexts,
            evidence,
        })
    }
}

impl Router {
    /// The learned part as JSON bytes; [`Router::restore_learned`] installs it in a router with
    /// the same configuration.
    pub fn learned(&mut self) -> Result<Vec<u8>> {
        self.capture_learned().encode()
    }

    /// The learned part at this moment, to encode later (see [`LearnedCapture`]).
    pub fn capture_learned(&mut self) -> LearnedCapture {
        LearnedCapture {
            contexts: self.contexts.share(),
            evidence: self.evidence.clone(),
        }
    }

    /// Replace every learner by the one [`Router::learned`] gave (contexts it does not name
    /// start afresh); the generator and pending decisions stay. Everything is validated first:
    /// on error nothing changes.
    pub fn restore_learned(&mut self, bytes: &[u8]) -> Result<()> {
        let parsed = ParsedLearned::parse(bytes, &self.config)?;
        self.install_learned(parsed)
    }

    /// Install a parsed learned part (see [`Router::restore_learned`]); its configuration must
    /// be this router's. On error nothing changes.
    pub fn install_learned(&mut self, parsed: ParsedLearned) -> Result<()> {
        let ParsedLearned { contexts, evidence } = parsed;
        if self.contexts.len().saturating_add(contexts.len()) >= u32::MAX as usize {
            return Err(Error::snapshot("more contexts than a router can hold"));
        }
        let named: std::collections::HashSet<&str> = contexts.iter().map(|(n, _)| n.as_str()).collect();
        let forgotten: Vec<u32> = self
            .contexts
            .iter()
            .filter(|&(name, _, learned)| learned && !named.contains(name))
            .filter_map(|(name, _, _)| self.contexts.index_of(name))
            .collect();
        for index in forgotten {
            self.contexts.unlearn(index, Learner::new(self.fresh.clone()));
        }
        let mut total: u64 = 0;
        // In order: each becomes the most recently learned, so the list ends in the given order.
        for (name, learner) in contexts {
            total = learner.feedbacks.iter().fold(total, |sum, &n| sum.saturating_add(n));
            let fresh = &self.fresh;
            let mut learner = Some(learner);
            if let Some(index) = self
                .contexts
                .get_or_insert_for_learning(&name, || learner.take().unwrap_or_else(|| Learner::new(fresh.clone())))
            {
                if let (Some(slot), Some(learner)) = (self.contexts.learner_mut(index), learner) {
                    *slot = learner;
                }
                self.contexts.learned_at(index);
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
    use crate::reward::Observation;
    use crate::router::Router;
    use crate::router::tests::config;
    use crate::subset::Subset;

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
                share: 0.0,
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
            let mut restored = Router::restore(&target.snapshot().unwrap()).unwrap();
            assert_eq!(restored.learned().unwrap(), source.learned().unwrap());
        }
    }

    #[test]
    fn a_checkpoint_keeps_the_eviction_order() {
        let bounded = || {
            let mut c = config(policies()[0].clone());
            c.max_contexts = Some(3);
            Router::new(c, 1).unwrap()
        };
        let good = Observation::new(1.0, 0.0, 0.0).unwrap();
        let mut one = bounded();
        for context in ["p", "q", "r", "s", "q", "p"] {
            one.observe(context, "a", good, None).unwrap();
        }
        // A replica starting from the checkpoint, with contexts of its own selections.
        let mut two = bounded();
        two.select(Some("r"), Subset::ALL).unwrap();
        two.observe("t", "b", good, None).unwrap();
        two.restore_learned(&one.learned().unwrap()).unwrap();
        assert_eq!(two.learned().unwrap(), one.learned().unwrap());
        assert_eq!(
            two.feedback_counts("t"),
            vec![0, 0, 0],
            "forgotten: not in the checkpoint"
        );
        // Then the same events evict the same contexts (s, the least recently learned, first).
        for router in [&mut one, &mut two] {
            router.observe("u", "c", good, None).unwrap();
            assert_eq!(&router.contexts()[..3], ["q", "p", "u"]);
        }
        assert_eq!(two.learned().unwrap(), one.learned().unwrap());
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
