//! The floor of the Python benchmarks: `select` and `feedback` with the signatures of
//! `RouterCore`'s that do nothing. What a decision costs from Python minus what this costs is
//! the core's own work; the rest is the call into the extension, which no learner can avoid.

use pyo3::prelude::*;

use super::decision::PyDecision;

#[pyclass(name = "_Floor", module = "pickllm._core", frozen)]
pub struct PyFloor {
    decision: Py<PyDecision>,
}

#[pymethods]
impl PyFloor {
    #[new]
    fn new(decision: Py<PyDecision>) -> Self {
        Self { decision }
    }

    /// Returns the decision it was built with.
    #[pyo3(signature = (context=None, *, exclude=None, allowed=None, prompt=None))]
    fn select(
        &self,
        py: Python<'_>,
        context: Option<&Bound<'_, PyAny>>,
        exclude: Option<&Bound<'_, PyAny>>,
        allowed: Option<&Bound<'_, PyAny>>,
        prompt: Option<&Bound<'_, PyAny>>,
    ) -> Py<PyDecision> {
        let _ = (context, exclude, allowed, prompt);
        self.decision.clone_ref(py)
    }

    /// Returns 0.0.
    #[pyo3(signature = (decision, *, accuracy, cost=None, latency=None))]
    fn feedback(
        &self,
        decision: &Bound<'_, PyAny>,
        accuracy: &Bound<'_, PyAny>,
        cost: Option<&Bound<'_, PyAny>>,
        latency: Option<&Bound<'_, PyAny>>,
    ) -> f64 {
        let _ = (decision, accuracy, cost, latency);
        0.0
    }
}
