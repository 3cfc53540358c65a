//! `PromptContextsCore`: a fitted prompt-to-cluster mapper for `pickllm.PromptContexts`.
//!
//! Immutable once built, so `frozen` and shared by threads without a lock. Fitting and
//! assignment detach from the interpreter: fitting takes milliseconds to seconds, assignment
//! microseconds per kilobyte, both far above what detaching costs.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use super::errors::utf8;
use crate::prompt_contexts::{FitOptions, PromptContexts};

#[pyclass(name = "PromptContextsCore", module = "pickllm._core", frozen)]
pub struct PyPromptContexts {
    mapper: PromptContexts,
}

#[pymethods]
impl PyPromptContexts {
    /// Fit on `prompts`, in order; `ConfigError` for bad options or fewer than two prompts.
    #[staticmethod]
    fn fit(
        py: Python<'_>,
        prompts: Vec<Bound<'_, PyString>>,
        max_clusters: usize,
        min_silhouette: f64,
        seed: u64,
    ) -> PyResult<Self> {
        let texts = prompts
            .iter()
            .map(|p| utf8(py, "prompt", p))
            .collect::<PyResult<Vec<&str>>>()?;
        let options = FitOptions {
            max_clusters,
            min_silhouette,
            seed,
        };
        let mapper = py.detach(|| PromptContexts::fit(&texts, &options))?;
        Ok(PyPromptContexts { mapper })
    }

    /// The mapper `to_bytes` wrote; `SnapshotError` for anything else.
    #[staticmethod]
    fn from_bytes(py: Python<'_>, data: &[u8]) -> PyResult<Self> {
        let mapper = py.detach(|| PromptContexts::from_bytes(data))?;
        Ok(PyPromptContexts { mapper })
    }

    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let bytes = py.detach(|| self.mapper.to_bytes());
        PyBytes::new(py, &bytes)
    }

    /// The cluster of `prompt`, in `range(clusters)`.
    fn assign(&self, py: Python<'_>, prompt: &Bound<'_, PyString>) -> PyResult<usize> {
        let text = utf8(py, "prompt", prompt)?;
        Ok(py.detach(|| self.mapper.assign(text)))
    }

    #[getter]
    fn clusters(&self) -> usize {
        self.mapper.len()
    }

    #[getter]
    fn sizes(&self) -> Vec<u64> {
        self.mapper.clusters().iter().map(|c| c.size).collect()
    }

    #[getter]
    fn terms(&self) -> Vec<Vec<String>> {
        self.mapper.clusters().iter().map(|c| c.terms.clone()).collect()
    }

    #[getter]
    fn silhouette(&self) -> f64 {
        self.mapper.silhouette()
    }

    #[getter]
    fn prompts(&self) -> u64 {
        self.mapper.prompts()
    }

    #[getter]
    fn vocabulary(&self) -> usize {
        self.mapper.vocabulary()
    }
}
