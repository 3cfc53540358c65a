//! Replay entry points: whole sessions in the core, detached from the interpreter.

use pyo3::prelude::*;

use super::functions::parse;
use crate::error::Error;
use crate::replay::{self, Drift, Strategy, Table};
use crate::reward::Reward;

/// One table per context: (accuracy, cost, latency), each row-major query x model.
type Columns = (Vec<f64>, Vec<f64>, Vec<f64>);

/// After a drift: queries to recover, reward and new best fixed reward (sums), picks of the new
/// best in the window and the window's queries.
type DriftSummary = (Option<u32>, f64, f64, u32, u32);

/// cost, latency, accuracy, reward, best-fixed reward, random reward (sums), picks per model,
/// convergence per learner (query, model), trace, what happened after the drift.
type Session = (
    f64,
    f64,
    f64,
    f64,
    f64,
    f64,
    Vec<u32>,
    Vec<Option<(u32, u32)>>,
    Vec<f64>,
    Option<DriftSummary>,
);

fn tables(models: usize, columns: Vec<Columns>) -> Result<Vec<Table>, Error> {
    columns
        .into_iter()
        .map(|(accuracy, cost, latency)| Table::new(models, accuracy, cost, latency))
        .collect()
}

/// Run one session per seed; see `rust/replay.rs`.
#[pyfunction]
#[pyo3(signature = (models, columns, reward_json, strategy_json, queries, seeds, trace=false, drift_json=None))]
#[allow(clippy::too_many_arguments)]
pub fn replay_sessions(
    py: Python<'_>,
    models: usize,
    columns: Vec<Columns>,
    reward_json: &str,
    strategy_json: &str,
    queries: usize,
    seeds: Vec<u64>,
    trace: bool,
    drift_json: Option<&str>,
) -> PyResult<Vec<Session>> {
    let reward: Reward = parse("reward", reward_json)?;
    let strategy: Strategy = parse("strategy", strategy_json)?;
    let drift: Option<Drift> = drift_json.map(|json| parse("drift", json)).transpose()?;
    // Thousands of sessions take long enough to be worth letting other threads run.
    let results = py.detach(|| -> Result<_, Error> {
        let tables = tables(models, columns)?;
        replay::run_drifting(&tables, &reward, &strategy, queries, &seeds, trace, drift.as_ref())
    })?;
    Ok(results
        .into_iter()
        .map(|s| {
            (
                s.cost,
                s.latency,
                s.accuracy,
                s.reward,
                s.best_fixed_reward,
                s.random_reward,
                s.picks,
                s.converged,
                s.trace,
                s.drift.map(|d| {
                    (
                        d.recover,
                        d.reward,
                        d.best_fixed_reward,
                        d.window_best_picks,
                        d.window_queries,
                    )
                }),
            )
        })
        .collect())
}

/// Per model: mean accuracy, cost, latency and reward over one table.
#[pyfunction]
pub fn table_means(models: usize, columns: Columns, reward_json: &str) -> PyResult<Vec<[f64; 4]>> {
    let reward: Reward = parse("reward", reward_json)?;
    reward.validate()?;
    let (accuracy, cost, latency) = columns;
    Ok(Table::new(models, accuracy, cost, latency)?.means(&reward))
}
