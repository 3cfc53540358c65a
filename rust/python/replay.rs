//! Replay entry points: whole sessions in the core, detached from the interpreter.

use pyo3::buffer::PyBuffer;
use pyo3::prelude::*;

use super::functions::parse;
use crate::error::Error;
use crate::replay::{self, Drift, SessionResult, Strategy, Table};
use crate::reward::Reward;

/// One table per context: (accuracy, cost, latency), each a float64 buffer (`array('d')`),
/// row-major query x model. Read through the buffer protocol: one memcpy per array and call,
/// where extracting a `Vec<f64>` would build a Python float per cell.
type Columns = (PyBuffer<f64>, PyBuffer<f64>, PyBuffer<f64>);

/// After a drift: queries to recover, reward and new best fixed reward (sums), picks of the new
/// best in the window and the window's queries.
type DriftSummary = (Option<u32>, f64, f64, u32, u32);

fn table(py: Python<'_>, models: usize, columns: &Columns) -> PyResult<Table> {
    let (accuracy, cost, latency) = columns;
    Ok(Table::new(
        models,
        accuracy.to_vec(py)?,
        cost.to_vec(py)?,
        latency.to_vec(py)?,
    )?)
}

/// What one replayed session produced, sums over its queries (`SessionResult` of
/// `rust/replay.rs`): read-only attributes instead of a positional tuple.
#[pyclass(name = "ReplaySession", module = "pickllm._core", frozen, get_all)]
pub struct PyReplaySession {
    cost: f64,
    latency: f64,
    accuracy: f64,
    reward: f64,
    best_fixed_reward: f64,
    random_reward: f64,
    picks: Vec<u32>,
    converged: Vec<Option<(u32, u32)>>,
    trace: Vec<f64>,
    rewards: Vec<f64>,
    /// With a drift: what happened after it (see `DriftSummary`).
    drift: Option<DriftSummary>,
}

impl From<SessionResult> for PyReplaySession {
    fn from(s: SessionResult) -> Self {
        Self {
            cost: s.cost,
            latency: s.latency,
            accuracy: s.accuracy,
            reward: s.reward,
            best_fixed_reward: s.best_fixed_reward,
            random_reward: s.random_reward,
            picks: s.picks,
            converged: s.converged,
            trace: s.trace,
            rewards: s.rewards,
            drift: s.drift.map(|d| {
                (
                    d.recover,
                    d.reward,
                    d.best_fixed_reward,
                    d.window_best_picks,
                    d.window_queries,
                )
            }),
        }
    }
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
) -> PyResult<Vec<PyReplaySession>> {
    let reward: Reward = parse("reward", reward_json)?;
    let strategy: Strategy = parse("strategy", strategy_json)?;
    let drift: Option<Drift> = drift_json.map(|json| parse("drift", json)).transpose()?;
    let tables = columns
        .iter()
        .map(|c| table(py, models, c))
        .collect::<PyResult<Vec<_>>>()?;
    // Thousands of sessions take long enough to be worth letting other threads run.
    let results = py.detach(|| -> Result<_, Error> {
        replay::run_drifting(&tables, &reward, &strategy, queries, &seeds, trace, drift.as_ref())
    })?;
    Ok(results.into_iter().map(PyReplaySession::from).collect())
}

/// Per model: mean accuracy, cost, latency and reward over one table.
#[pyfunction]
pub fn table_means(py: Python<'_>, models: usize, columns: Columns, reward_json: &str) -> PyResult<Vec<[f64; 4]>> {
    let reward: Reward = parse("reward", reward_json)?;
    reward.validate()?;
    Ok(table(py, models, &columns)?.means(&reward))
}
