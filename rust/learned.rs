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

use crate::contexts::{self, Contexts, Shared};
use crate::error::{Error, Result};
use crate::learner::{Evidence, Learner, State};
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
            while let Some(entry) = map.next_entry::<String, Learner>()? {
                entries.push(entry);
            }
            // Checked once all are read, by reference: a copy of every name, freed at once,
            // left ~100,000 small chunks for the allocator to consolidate on the loading thread's
            // next large allocation, under the router's lock (10-25 ms at 100,000 contexts).
            let mut seen = std::collections::HashSet::with_capacity(entries.len());
            if let Some((name, _)) = entries.iter().find(|(name, _)| !seen.insert(name.as_str())) {
                return Err(serde::de::Error::custom(format!("context {name:?} appears twice")));
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
        let observed = install(&mut self.contexts, &self.fresh, parsed.contexts)?;
        // Installed counts were learned elsewhere; they answer to no decision of this router.
        self.observed = observed;
        self.evidence = parsed.evidence;
        Ok(())
    }

    /// A copy of the contexts to install a learned part in without this router's lock (see
    /// [`Fork::install`] and [`Router::swap_installed`]): a reference count per chunk.
    pub fn fork_contexts(&mut self) -> Fork {
        Fork {
            contexts: self.contexts.fork(),
            fresh: self.fresh.clone(),
        }
    }

    /// Swap in the contexts [`Fork::install`] built, unless this router's contexts changed
    /// since the fork (a selection created a context, an event was learned): then nothing
    /// changes and the installed part comes back, stale. Otherwise returns the contexts replaced,
    /// for the caller to free without the lock. The result is what [`Router::install_learned`]
    /// would have done at the fork: contexts keep their slots, so pending decisions stay valid.
    pub fn swap_installed(&mut self, installed: Installed) -> std::result::Result<Contexts, Box<Installed>> {
        if installed.edits_at_fork != self.contexts.edits() {
            return Err(Box::new(installed));
        }
        self.observed = installed.observed;
        self.evidence = installed.evidence;
        Ok(std::mem::replace(&mut self.contexts, installed.contexts))
    }
}

/// A router's contexts forked to install a learned part apart (see [`Router::fork_contexts`]).
pub struct Fork {
    contexts: contexts::Fork,
    fresh: State,
}

/// A learned part installed in a fork, ready to swap in (see [`Router::swap_installed`]).
pub struct Installed {
    contexts: Contexts,
    evidence: Evidence,
    observed: u64,
    edits_at_fork: u64,
}

impl Fork {
    /// Install `parsed` in the forked contexts, as [`Router::install_learned`] does in place;
    /// `parsed` is copied, so that a stale result can be tried again.
    pub fn install(self, parsed: &ParsedLearned) -> Result<Installed> {
        let Fork { contexts, fresh } = self;
        let mut contexts = contexts.into_contexts();
        let edits_at_fork = contexts.edits();
        let observed = install(&mut contexts, &fresh, parsed.contexts.to_vec())?;
        Ok(Installed {
            contexts,
            evidence: parsed.evidence.clone(),
            observed,
            edits_at_fork,
        })
    }
}

/// Replace every learner of `table` by the one named in `learned` (contexts it does not name
/// start afresh from `fresh`), in `learned`'s order; returns the feedbacks installed. Checked
/// before anything changes.
fn install(table: &mut Contexts, fresh: &State, learned: Vec<(String, Learner)>) -> Result<u64> {
    if table.len().saturating_add(learned.len()) >= u32::MAX as usize {
        return Err(Error::snapshot("more contexts than a router can hold"));
    }
    let named: std::collections::HashSet<&str> = learned.iter().map(|(n, _)| n.as_str()).collect();
    let forgotten: Vec<u32> = table
        .iter()
        .filter(|&(name, _, learned)| learned && !named.contains(name))
        .filter_map(|(name, _, _)| table.index_of(name))
        .collect();
    for index in forgotten {
        table.unlearn(index, Learner::new(fresh.clone()));
    }
    let mut total: u64 = 0;
    // In order: each becomes the most recently learned, so the list ends in the given order.
    for (name, learner) in learned {
        total = learner.feedbacks.iter().fold(total, |sum, &n| sum.saturating_add(n));
        let mut learner = Some(learner);
        if let Some(index) =
            table.get_or_insert_for_learning(&name, || learner.take().unwrap_or_else(|| Learner::new(fresh.clone())))
        {
            if let (Some(slot), Some(learner)) = (table.learner_mut(index), learner) {
                *slot = learner;
            }
            table.learned_at(index);
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::ParsedLearned;
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
    fn installing_in_a_fork_then_swapping_is_installing_in_place() {
        for policy in policies() {
            let mut source = Router::new(config(policy.clone()), 1).unwrap();
            for (context, model, accuracy) in events() {
                source
                    .observe(context, model, Observation::new(accuracy, 0.0, 0.0).unwrap(), None)
                    .unwrap();
            }
            let checkpoint = source.learned().unwrap();
            let mut target = Router::new(config(policy), 2).unwrap();
            let pending = target.select(Some("x"), Subset::ALL).unwrap();
            target.select(Some("only-here"), Subset::ALL).unwrap();
            target
                .observe("w", "a", Observation::new(1.0, 0.0, 0.0).unwrap(), None)
                .unwrap();
            let mut in_place = target.clone();
            in_place.restore_learned(&checkpoint).unwrap();

            let parsed = ParsedLearned::parse(&checkpoint, target.config()).unwrap();
            let before = target.clone();
            let installed = target.fork_contexts().install(&parsed).unwrap();
            assert_eq!(target, before, "installing in the fork leaves the router as it was");
            assert_ne!(target, in_place);
            assert!(target.swap_installed(installed).is_ok());
            assert_eq!(target, in_place);
            assert_eq!(target.learned().unwrap(), checkpoint);
            // The decision pending before the install still settles, into its context.
            let model = target.config().models[pending.arm].clone();
            target
                .feedback(pending.id, &model, "x", Observation::new(1.0, 0.0, 0.0).unwrap())
                .unwrap();
        }
    }

    #[test]
    fn a_fork_is_stale_once_the_router_changed_and_swapping_it_changes_nothing() {
        let mut source = Router::new(config(policies()[0].clone()), 1).unwrap();
        source
            .observe("x", "a", Observation::new(1.0, 0.0, 0.0).unwrap(), None)
            .unwrap();
        let parsed = ParsedLearned::parse(&source.learned().unwrap(), source.config()).unwrap();
        let changes: [fn(&mut Router); 2] = [
            |r| {
                r.select(Some("new"), Subset::ALL).unwrap();
            },
            |r| {
                r.observe("y", "b", Observation::new(0.0, 0.0, 0.0).unwrap(), None)
                    .unwrap();
            },
        ];
        for change in changes {
            let mut target = Router::new(config(policies()[0].clone()), 2).unwrap();
            let fork = target.fork_contexts();
            change(&mut target);
            let before = target.clone();
            assert!(target.swap_installed(fork.install(&parsed).unwrap()).is_err());
            assert_eq!(target, before);
            // Selecting in a context that exists changes nothing: the swap goes through.
            target.select(Some("new"), Subset::ALL).unwrap();
            let fork = target.fork_contexts();
            target.select(Some("new"), Subset::ALL).unwrap();
            assert!(target.swap_installed(fork.install(&parsed).unwrap()).is_ok());
            assert_eq!(target.learned().unwrap(), source.learned().unwrap());
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
