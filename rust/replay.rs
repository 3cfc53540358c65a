//! Replay: whole routing sessions on recorded outcomes, run inside the core.
//!
//! A [`Table`] holds one context's recorded queries: for every query and every model, the
//! accuracy, cost and latency that model produced. A session draws `queries` rows in an order
//! fixed by its seed (a fresh shuffle of each table, repeated when a session is longer than the
//! table); a strategy picks one model per query and the outcome is read from the table. Every
//! strategy sees exactly the same queries for the same seed, because the data order and the
//! strategy's own randomness come from two separate generators.
//!
//! Sessions that draw from several tables pick the table of each query uniformly at random;
//! a learning strategy then keeps one learner per table (per-context) or one for all (global).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::learner::{Evidence, Learner, Policy, Query};
use crate::reward::{Observation, Reward};
use crate::rng::Rng;
use crate::subset::Subset;

/// One context's recorded outcomes, row-major: query `q`, model `m` at `q * models + m`.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    models: usize,
    accuracy: Vec<f64>,
    cost: Vec<f64>,
    latency: Vec<f64>,
}

impl Table {
    /// Validates shapes and every value (accuracy in [0, 1], cost and latency finite, >= 0).
    pub fn new(models: usize, accuracy: Vec<f64>, cost: Vec<f64>, latency: Vec<f64>) -> Result<Self> {
        if models == 0 {
            return Err(Error::parameter("models", 0, "at least 1"));
        }
        let cells = accuracy.len();
        if cells == 0 || !cells.is_multiple_of(models) || cost.len() != cells || latency.len() != cells {
            return Err(Error::parameter(
                "table",
                format!(
                    "{} accuracy, {} cost, {} latency cells",
                    cells,
                    cost.len(),
                    latency.len()
                ),
                format!("the same non-zero multiple of {models} models in each column"),
            ));
        }
        for cell in 0..cells {
            Observation::new(accuracy[cell], cost[cell], latency[cell]).map_err(|e| match e {
                Error::InvalidObservation { field, value, expected } => {
                    let (query, model) = (cell / models, cell % models);
                    Error::parameter(
                        format!("table cell (query {query}, model {model}): {field}"),
                        value,
                        expected,
                    )
                }
                other => other,
            })?;
        }
        Ok(Table {
            models,
            accuracy,
            cost,
            latency,
        })
    }

    #[must_use]
    pub fn rows(&self) -> usize {
        self.accuracy.len() / self.models
    }

    fn observation(&self, row: usize, arm: usize) -> Observation {
        let cell = row * self.models + arm;
        Observation {
            accuracy: self.accuracy[cell],
            cost: self.cost[cell],
            latency: self.latency[cell],
        }
    }

    /// The same table after `drift`: its model's accuracy and cost scaled (accuracy capped at 1).
    fn drifted(&self, drift: &Drift) -> Table {
        let mut table = self.clone();
        for row in 0..self.rows() {
            let cell = row * self.models + drift.model;
            table.accuracy[cell] = (table.accuracy[cell] * drift.accuracy).min(1.0);
            table.cost[cell] *= drift.cost;
        }
        table
    }

    /// Per model: mean accuracy, mean cost, mean latency and mean reward over all rows.
    #[must_use]
    pub fn means(&self, reward: &Reward) -> Vec<[f64; 4]> {
        #[allow(clippy::cast_precision_loss)]
        let rows = self.rows() as f64;
        (0..self.models)
            .map(|arm| {
                let mut sums = [0.0; 4];
                for row in 0..self.rows() {
                    let obs = self.observation(row, arm);
                    sums[0] += obs.accuracy;
                    sums[1] += obs.cost;
                    sums[2] += obs.latency;
                    sums[3] += reward.compute(obs);
                }
                sums.map(|s| s / rows)
            })
            .collect()
    }
}

/// Who picks the model of each query.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Strategy {
    /// A learner per table (`per_context`) or one learner for the whole session.
    Learner { policy: Policy, per_context: bool },
    /// Uniformly at random.
    Random,
    /// Models in turn.
    RoundRobin,
    /// Always the same model (cheapest, most expensive, best in hindsight...).
    Fixed { model: usize },
    /// Per query, the model with the highest reward on that very query: the ceiling.
    Oracle,
}

/// A change of outcomes in the middle of a session: from query `at` on (0-based), model
/// `model`'s accuracy is multiplied by `accuracy` (capped at 1) and its cost by `cost`, in every
/// table: an outage (`accuracy < 1`) or a price cut (`cost < 1`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Drift {
    pub at: usize,
    pub model: usize,
    pub accuracy: f64,
    pub cost: f64,
    /// Queries in the moving averages of queries-to-recover.
    pub smoothing: usize,
    /// Queries after the change, `[start, end)`, over which picks of the new best are counted.
    pub window: [usize; 2],
}

impl Drift {
    fn validate(&self, models: usize, queries: usize) -> Result<()> {
        if self.model >= models {
            return Err(Error::parameter("drift model", self.model, format!("below {models}")));
        }
        if self.at == 0 || self.at >= queries {
            return Err(Error::parameter(
                "drift at",
                self.at,
                format!("in [1, queries={queries})"),
            ));
        }
        for (name, value) in [("drift accuracy", self.accuracy), ("drift cost", self.cost)] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(Error::parameter(name, value, "a finite factor >= 0"));
            }
        }
        if self.smoothing == 0 {
            return Err(Error::parameter("drift smoothing", 0, "at least 1 query"));
        }
        if self.window[0] >= self.window[1] {
            return Err(Error::parameter(
                "drift window",
                format!("{:?}", self.window),
                "[start, end) with start < end",
            ));
        }
        Ok(())
    }
}

/// What happened after a [`Drift`].
#[derive(Clone, Debug, PartialEq)]
pub struct DriftResult {
    /// Queries after the change until the policy's moving-average reward stays within 5% of the
    /// new best fixed model's for good (both averaged over the same last `smoothing` queries);
    /// `None` if it is still short at the end of the session.
    pub recover: Option<u32>,
    /// Reward summed over the queries after the change.
    pub reward: f64,
    /// What the best fixed model of each table after the change earned on those queries.
    pub best_fixed_reward: f64,
    /// Within the window: picks of the new best model of the query's table, and queries.
    pub window_best_picks: u32,
    pub window_queries: u32,
}

/// What one session produced. Sums run over the session's queries.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionResult {
    pub cost: f64,
    pub latency: f64,
    pub accuracy: f64,
    pub reward: f64,
    /// The reward the best fixed model of each query's table would have earned on the same queries.
    pub best_fixed_reward: f64,
    /// The expected reward of uniform random choice on the same queries.
    pub random_reward: f64,
    /// How often each model was chosen.
    pub picks: Vec<u32>,
    /// Per learner (per table, or one): the 1-based query at which it first counted as
    /// converged, and the model, if it converged.
    pub converged: Vec<Option<(u32, u32)>>,
    /// With `trace`: the first learner's selection probabilities before each query, row-major.
    pub trace: Vec<f64>,
    /// With `trace`, per query: the reward the strategy earned, and the one the final best
    /// fixed model of the query's table (its best after the drift, if there is one) would have
    /// earned on the same query, pairs in query order.
    pub rewards: Vec<f64>,
    /// With a drift: what happened after it.
    pub drift: Option<DriftResult>,
}

/// Rewards of every cell, and the best fixed model of each table by mean reward.
struct Scored {
    rewards: Vec<Vec<f64>>,
    best: Vec<usize>,
}

fn score(tables: &[Table], reward: &Reward) -> Scored {
    let rewards: Vec<Vec<f64>> = tables
        .iter()
        .map(|t| {
            (0..t.accuracy.len())
                .map(|cell| reward.compute(t.observation(cell / t.models, cell % t.models)))
                .collect()
        })
        .collect();
    let best = tables
        .iter()
        .zip(&rewards)
        .map(|(t, r)| {
            let mean = |arm: usize| (0..t.rows()).map(|row| r[row * t.models + arm]).sum::<f64>();
            (0..t.models).fold(0, |best, arm| if mean(arm) > mean(best) { arm } else { best })
        })
        .collect();
    Scored { rewards, best }
}

/// Run one session per seed. All tables must have the same number of models.
pub fn run(
    tables: &[Table],
    reward: &Reward,
    strategy: &Strategy,
    queries: usize,
    seeds: &[u64],
    trace: bool,
) -> Result<Vec<SessionResult>> {
    run_drifting(tables, reward, strategy, queries, seeds, trace, None)
}

/// [`run`], with the outcomes changing mid-session as `drift` says.
pub fn run_drifting(
    tables: &[Table],
    reward: &Reward,
    strategy: &Strategy,
    queries: usize,
    seeds: &[u64],
    trace: bool,
    drift: Option<&Drift>,
) -> Result<Vec<SessionResult>> {
    let models = tables
        .first()
        .map(|t| t.models)
        .ok_or_else(|| Error::parameter("tables", 0, "at least one table"))?;
    if tables.iter().any(|t| t.models != models) {
        return Err(Error::parameter(
            "tables",
            "differing model counts",
            "the same models in every table",
        ));
    }
    if queries == 0 {
        return Err(Error::parameter("queries", 0, "at least 1"));
    }
    reward.validate()?;
    match strategy {
        Strategy::Learner { policy, .. } => policy.validate(models)?,
        Strategy::Fixed { model } if *model >= models => {
            return Err(Error::parameter("fixed model", model, format!("below {models}")));
        }
        _ => {}
    }
    if let Some(drift) = drift {
        drift.validate(models, queries)?;
    }
    let before = score(tables, reward);
    let after = drift.map(|drift| {
        let drifted: Vec<Table> = tables.iter().map(|t| t.drifted(drift)).collect();
        (score(&drifted, reward), drifted, drift)
    });
    let phases = Phases {
        before: (tables, &before),
        after: after
            .as_ref()
            .map(|(scored, drifted, drift)| (drifted.as_slice(), scored, *drift)),
    };
    Ok(seeds
        .iter()
        .map(|&seed| session(&phases, strategy, queries, seed, trace))
        .collect())
}

/// The data order: for each table a shuffled list of rows, reshuffled when exhausted.
struct Order {
    rows: Vec<Vec<usize>>,
    next: Vec<usize>,
}

impl Order {
    fn new(tables: &[Table]) -> Self {
        Order {
            rows: tables.iter().map(|t| (0..t.rows()).collect()).collect(),
            next: vec![usize::MAX; tables.len()],
        }
    }

    fn draw(&mut self, table: usize, rng: &mut Rng) -> usize {
        let rows = &mut self.rows[table];
        if self.next[table] >= rows.len() {
            // Fisher-Yates.
            for i in (1..rows.len()).rev() {
                rows.swap(i, rng.below(i + 1));
            }
            self.next[table] = 0;
        }
        self.next[table] += 1;
        rows[self.next[table] - 1]
    }
}

/// Decorrelates the strategy's generator from the data order's.
const STRATEGY_STREAM: u64 = 0x6A09_E667_F3BC_C909;

/// The outcomes before a drift, and after it if there is one.
struct Phases<'a> {
    before: (&'a [Table], &'a Scored),
    after: Option<(&'a [Table], &'a Scored, &'a Drift)>,
}

fn session(phases: &Phases<'_>, strategy: &Strategy, queries: usize, seed: u64, trace: bool) -> SessionResult {
    let (tables, _) = phases.before;
    let models = tables[0].models;
    // Per query after the drift: the policy's reward, the new best fixed model's, and whether
    // the pick was the new best.
    let mut after: Vec<(f64, f64, bool)> = Vec::new();
    // Pooled over the session's tables, as a router pools its contexts.
    let mut evidence = Evidence::new(models);
    let mut data_rng = Rng::seed_from_u64(seed);
    let mut rng = Rng::seed_from_u64(seed ^ STRATEGY_STREAM);
    let mut order = Order::new(tables);
    let (policy, mut learners) = match strategy {
        Strategy::Learner { policy, per_context } => {
            let count = if *per_context { tables.len() } else { 1 };
            let fresh = policy.initial_state(models, None).map(Learner::new);
            (Some(policy), fresh.map(|l| vec![l; count]).unwrap_or_default())
        }
        _ => (None, Vec::new()),
    };
    let mut result = SessionResult {
        cost: 0.0,
        latency: 0.0,
        accuracy: 0.0,
        reward: 0.0,
        best_fixed_reward: 0.0,
        random_reward: 0.0,
        picks: vec![0; models],
        converged: vec![None; learners.len()],
        trace: Vec::new(),
        rewards: Vec::new(),
        drift: None,
    };
    let final_best = &phases.after.map_or(phases.before.1, |(_, scored, _)| scored).best;
    for query in 0..queries {
        let (tables, scored, drift) = match phases.after {
            Some((tables, scored, drift)) if query >= drift.at => (tables, scored, Some(drift)),
            _ => (phases.before.0, phases.before.1, None),
        };
        let table = if tables.len() == 1 {
            0
        } else {
            data_rng.below(tables.len())
        };
        let row = order.draw(table, &mut data_rng);
        let row_rewards = &scored.rewards[table][row * models..(row + 1) * models];
        let learner_index = if learners.len() > 1 { table } else { 0 };
        if trace && let (Some(first), Some(policy)) = (learners.first(), policy) {
            result.trace.extend(first.probabilities(policy, Some(&evidence)));
        }
        let mut propensity = 1.0;
        let arm = match strategy {
            Strategy::Learner { policy, .. } => {
                // Selection over all models cannot fail; model 0 stands in for the impossible.
                let (arm, p) = learners[learner_index]
                    .select(policy, Query::pooled(Subset::ALL, &evidence), &mut rng)
                    .unwrap_or((0, 1.0));
                propensity = p;
                arm
            }
            Strategy::Random => rng.below(models),
            Strategy::RoundRobin => query % models,
            Strategy::Fixed { model } => *model,
            Strategy::Oracle => (0..models).fold(0, |best, arm| {
                if row_rewards[arm] > row_rewards[best] {
                    arm
                } else {
                    best
                }
            }),
        };
        let obs = tables[table].observation(row, arm);
        let r = row_rewards[arm];
        if let Some(policy) = policy {
            let learner = &mut learners[learner_index];
            let _ = learner.learn(policy, arm, r, propensity);
            evidence.record(arm, r, policy.discount());
            if result.converged[learner_index].is_none()
                && let Some(model) = learner.converged(policy)
            {
                #[allow(clippy::cast_possible_truncation)] // queries and models fit u32 in practice
                let entry = Some((query as u32 + 1, model as u32));
                result.converged[learner_index] = entry;
            }
        }
        result.cost += obs.cost;
        result.latency += obs.latency;
        result.accuracy += obs.accuracy;
        result.reward += r;
        result.best_fixed_reward += row_rewards[scored.best[table]];
        #[allow(clippy::cast_precision_loss)]
        let uniform = row_rewards.iter().sum::<f64>() / models as f64;
        result.random_reward += uniform;
        result.picks[arm] += 1;
        if trace {
            result.rewards.extend([r, row_rewards[final_best[table]]]);
        }
        if drift.is_some() {
            let best = scored.best[table];
            after.push((r, row_rewards[best], arm == best));
        }
    }
    if let Some((_, _, drift)) = phases.after {
        result.drift = Some(drift_result(&after, drift));
    }
    result
}

/// Summarize the queries after a drift (see [`DriftResult`]).
fn drift_result(after: &[(f64, f64, bool)], drift: &Drift) -> DriftResult {
    let mut moving = (0.0, 0.0);
    let mut last_short = None;
    for (i, &(policy, best, _)) in after.iter().enumerate() {
        moving.0 += policy;
        moving.1 += best;
        if i >= drift.smoothing {
            moving.0 -= after[i - drift.smoothing].0;
            moving.1 -= after[i - drift.smoothing].1;
        }
        // 1e-9 absorbs the rounding of the running sums.
        if moving.0 < 0.95 * moving.1 - 1e-9 {
            last_short = Some(i);
        }
    }
    let window = after
        .get(drift.window[0]..drift.window[1].min(after.len()))
        .unwrap_or(&[]);
    #[allow(clippy::cast_possible_truncation)] // sessions are far shorter than 2^32 queries
    DriftResult {
        recover: match last_short {
            None => Some(0),
            Some(i) if i + 1 < after.len() => Some(i as u32 + 1),
            Some(_) => None,
        },
        reward: after.iter().map(|a| a.0).sum(),
        best_fixed_reward: after.iter().map(|a| a.1).sum(),
        window_best_picks: window.iter().filter(|a| a.2).count() as u32,
        window_queries: window.len() as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::automaton::AutomatonConfig;

    /// Model 0: always right, expensive and slow. Model 1: right half the time, cheap, fast.
    fn table() -> Table {
        let rows = 10;
        let accuracy = (0..rows)
            .flat_map(|r| [1.0, if r % 2 == 0 { 1.0 } else { 0.0 }])
            .collect();
        let cost = (0..rows).flat_map(|_| [0.01, 0.0001]).collect();
        let latency = (0..rows).flat_map(|_| [8.0, 0.5]).collect();
        Table::new(2, accuracy, cost, latency).unwrap()
    }

    fn accuracy_only() -> Reward {
        Reward {
            accuracy: 1.0,
            cost: 0.0,
            latency: 0.0,
            ..Reward::default()
        }
    }

    fn automaton() -> Strategy {
        Strategy::Learner {
            policy: Policy::LearningAutomaton(AutomatonConfig {
                learning_rate: 0.1,
                threshold: 0.99,
                lock: true,
            }),
            per_context: true,
        }
    }

    #[test]
    fn tables_are_validated() {
        assert!(Table::new(2, vec![1.0; 3], vec![0.0; 3], vec![0.0; 3]).is_err());
        assert!(Table::new(2, vec![1.5, 0.0], vec![0.0; 2], vec![0.0; 2]).is_err());
        assert!(Table::new(2, vec![1.0, 0.0], vec![-1.0, 0.0], vec![0.0; 2]).is_err());
        assert!(Table::new(2, vec![], vec![], vec![]).is_err());
    }

    #[test]
    fn sums_and_baselines_are_exact() {
        let t = table();
        let reward = accuracy_only();
        let fixed = run(
            std::slice::from_ref(&t),
            &reward,
            &Strategy::Fixed { model: 1 },
            10,
            &[3],
            false,
        )
        .unwrap()
        .remove(0);
        // One full shuffle of the 10 rows: model 1 is right on exactly 5.
        assert_eq!(fixed.accuracy, 5.0);
        assert!((fixed.cost - 10.0 * 0.0001).abs() < 1e-12);
        assert_eq!(fixed.latency, 5.0);
        assert_eq!(fixed.best_fixed_reward, 10.0);
        assert_eq!(fixed.random_reward, 7.5);
        let oracle = run(std::slice::from_ref(&t), &reward, &Strategy::Oracle, 10, &[3], false)
            .unwrap()
            .remove(0);
        assert_eq!(oracle.reward, 10.0);
        let robin = run(&[t], &reward, &Strategy::RoundRobin, 10, &[3], false)
            .unwrap()
            .remove(0);
        assert_eq!(robin.picks, vec![5, 5]);
    }

    #[test]
    fn deterministic_per_seed_and_the_learner_converges_to_the_best_model() {
        let reward = accuracy_only();
        let a = run(&[table()], &reward, &automaton(), 2000, &[1, 2, 3], true).unwrap();
        let b = run(&[table()], &reward, &automaton(), 2000, &[1, 2, 3], true).unwrap();
        assert_eq!(a, b);
        assert_ne!(a[0], a[1]);
        for session in &a {
            assert_eq!(session.converged[0].map(|(_, model)| model), Some(0));
            assert_eq!(session.trace.len(), 2000 * 2);
        }
    }

    #[test]
    fn every_strategy_sees_the_same_queries() {
        // With the oracle, the reward depends only on which rows were drawn: equal across
        // seeds' strategies means equal draws. Compare best-fixed sums across strategies.
        let reward = Reward::default();
        let strategies = [
            Strategy::Random,
            Strategy::Oracle,
            automaton(),
            Strategy::Fixed { model: 0 },
        ];
        let sums: Vec<f64> = strategies
            .iter()
            .map(|s| run(&[table(), table()], &reward, s, 37, &[9], false).unwrap()[0].best_fixed_reward)
            .collect();
        assert!(sums.windows(2).all(|w| w[0] == w[1]), "{sums:?}");
    }

    #[test]
    fn global_and_per_context_learners() {
        let reward = accuracy_only();
        let per = run(&[table(), table()], &reward, &automaton(), 100, &[1], false).unwrap();
        assert_eq!(per[0].converged.len(), 2);
        let Strategy::Learner { policy, .. } = automaton() else {
            unreachable!()
        };
        let global = Strategy::Learner {
            policy,
            per_context: false,
        };
        assert_eq!(
            run(&[table(), table()], &reward, &global, 100, &[1], false).unwrap()[0]
                .converged
                .len(),
            1
        );
    }

    /// Model 0 is always right, model 1 half the time (see `table`); at query 50 model 0
    /// breaks down.
    fn model_0_breaks_at_50() -> Drift {
        Drift {
            at: 50,
            model: 0,
            accuracy: 0.0,
            cost: 1.0,
            smoothing: 10,
            window: [20, 40],
        }
    }

    #[test]
    fn drift_changes_the_best_model_and_measures_recovery() {
        let drift = model_0_breaks_at_50();
        let reward = accuracy_only();
        let session = |strategy: &Strategy| {
            run_drifting(&[table()], &reward, strategy, 100, &[4], false, Some(&drift))
                .unwrap()
                .remove(0)
        };
        let stayer = session(&Strategy::Fixed { model: 0 });
        let after = stayer.drift.unwrap();
        assert_eq!(after.recover, None, "the broken model never recovers");
        assert_eq!(after.reward, 0.0);
        assert_eq!(after.best_fixed_reward, 25.0, "model 1 is right on half of 50 queries");
        assert_eq!((after.window_best_picks, after.window_queries), (0, 20));
        let mover = session(&Strategy::Fixed { model: 1 }).drift.unwrap();
        assert_eq!(mover.recover, Some(0));
        assert_eq!((mover.window_best_picks, mover.window_queries), (20, 20));
        // Before the change nothing differs from a session without drift.
        let plain = run(&[table()], &reward, &Strategy::Fixed { model: 0 }, 100, &[4], false).unwrap();
        assert_eq!(plain[0].reward, stayer.reward + 50.0);
        for bad in [
            Drift { at: 0, ..drift.clone() },
            Drift {
                model: 2,
                ..drift.clone()
            },
            Drift {
                accuracy: f64::NAN,
                ..drift.clone()
            },
            Drift {
                window: [5, 5],
                ..drift.clone()
            },
        ] {
            assert!(run_drifting(&[table()], &reward, &Strategy::Random, 100, &[1], false, Some(&bad)).is_err());
        }
    }

    #[test]
    fn traced_rewards_pair_the_strategy_with_the_final_best_model() {
        let drift = model_0_breaks_at_50();
        let reward = accuracy_only();
        let traced = run_drifting(
            &[table()],
            &reward,
            &Strategy::Fixed { model: 0 },
            100,
            &[4],
            true,
            Some(&drift),
        )
        .unwrap()
        .remove(0);
        assert_eq!(traced.rewards.len(), 200);
        let (own, best): (Vec<f64>, Vec<f64>) = traced.rewards.chunks(2).map(|p| (p[0], p[1])).unzip();
        assert_eq!(own.iter().sum::<f64>(), traced.reward);
        // Model 0 is right until the change and never after; the final best, model 1, is right
        // on half of the queries throughout.
        assert!(own[..50].iter().all(|&r| r == 1.0) && own[50..].iter().all(|&r| r == 0.0));
        assert_eq!(best[50..].iter().sum::<f64>(), traced.drift.unwrap().best_fixed_reward);
        assert_eq!(best.iter().sum::<f64>(), 50.0);
        let untraced = run_drifting(
            &[table()],
            &reward,
            &Strategy::Fixed { model: 0 },
            100,
            &[4],
            false,
            Some(&drift),
        );
        assert!(untraced.unwrap()[0].rewards.is_empty());
    }
}
