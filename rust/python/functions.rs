//! Module-level helpers for the Python configuration classes: validation happens in the core,
//! so the ranges are defined once.

use pyo3::prelude::*;

use crate::error::Error;
use crate::learner::Policy;
use crate::reward::{Observation, Reward};

/// Deserialize a configuration value handed over as JSON; a bad one is a `ConfigError`.
pub(super) fn parse<T: serde::de::DeserializeOwned>(what: &str, json: &str) -> Result<T, Error> {
    serde_json::from_str(json).map_err(|e| Error::parameter(what, json, format!("a valid {what} ({e})")))
}

/// Raise `ConfigError` unless `policy_json` is a valid policy for `models` models.
#[pyfunction]
pub fn validate_policy(policy_json: &str, models: usize) -> PyResult<()> {
    Ok(parse::<Policy>("policy", policy_json)?.validate(models)?)
}

/// Raise `ConfigError` unless `reward_json` is a valid reward.
#[pyfunction]
pub fn validate_reward(reward_json: &str) -> PyResult<()> {
    Ok(parse::<Reward>("reward", reward_json)?.validate()?)
}

/// The reward in [0, 1] of one observation.
#[pyfunction]
pub fn compute_reward(reward_json: &str, accuracy: f64, cost: f64, latency: f64) -> PyResult<f64> {
    let reward = parse::<Reward>("reward", reward_json)?;
    reward.validate()?;
    Ok(reward.compute(Observation::new(accuracy, cost, latency)?))
}
