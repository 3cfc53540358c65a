//! `Decision`: what `select` returns and `feedback` takes back.

use pyo3::basic::CompareOp;
use pyo3::prelude::*;
use pyo3::types::{PyFloat, PyInt, PyString, PyTuple};

use super::errors::{pickllm_error, utf8, wrong_type};

/// An immutable record of one routing decision. It can be rebuilt from its fields (for example
/// from a log line), pickled, compared and hashed. `router` is the id of the router that issued
/// it; a decision rebuilt without one is checked by its id, model and context only.
#[pyclass(name = "Decision", module = "pickllm._core", frozen)]
pub struct PyDecision {
    #[pyo3(get)]
    pub id: u64,
    #[pyo3(get)]
    pub model: Py<PyString>,
    #[pyo3(get)]
    pub probability: f64,
    #[pyo3(get)]
    pub context: Py<PyString>,
    #[pyo3(get)]
    pub router: Option<u64>,
}

impl PyDecision {
    fn key<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(
            py,
            [
                self.id.into_pyobject(py)?.into_any(),
                self.model.bind(py).clone().into_any(),
                PyFloat::new(py, self.probability).into_any(),
                self.context.bind(py).clone().into_any(),
                self.router.into_pyobject(py)?.into_any(),
            ],
        )
    }
}

/// A non-negative integer below 2^64 (not a bool), or a clear `DecisionError`.
fn decision_u64(py: Python<'_>, argument: &str, value: &Bound<'_, PyAny>) -> PyResult<u64> {
    if !value.is_instance_of::<PyInt>() || value.is_instance_of::<pyo3::types::PyBool>() {
        return Err(wrong_type(py, argument, "an int", value));
    }
    value.extract::<u64>().map_err(|_| {
        let shown = value.repr().map_or_else(|_| "?".to_owned(), |r| r.to_string());
        pickllm_error(
            py,
            "DecisionError",
            format!("{argument} must be an integer in [0, 2**64), got {shown}"),
        )
    })
}

fn name<'py>(py: Python<'py>, argument: &str, value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyString>> {
    let value = value
        .cast::<PyString>()
        .map_err(|_| wrong_type(py, argument, "a str", value))?;
    utf8(py, argument, value)?;
    Ok(value.clone())
}

#[pymethods]
impl PyDecision {
    #[new]
    #[pyo3(signature = (id, model, probability, context, router=None))]
    fn new(
        py: Python<'_>,
        id: &Bound<'_, PyAny>,
        model: &Bound<'_, PyAny>,
        probability: &Bound<'_, PyAny>,
        context: &Bound<'_, PyAny>,
        router: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let id = decision_u64(py, "id", id)?;
        let model = name(py, "model", model)?;
        let context = name(py, "context", context)?;
        let router = router
            .filter(|r| !r.is_none())
            .map(|r| decision_u64(py, "router", r))
            .transpose()?;
        if probability.is_instance_of::<pyo3::types::PyBool>() {
            return Err(wrong_type(py, "probability", "a number", probability));
        }
        let probability: f64 = probability
            .extract()
            .map_err(|_| wrong_type(py, "probability", "a number", probability))?;
        if !(probability > 0.0 && probability <= 1.0) {
            return Err(pickllm_error(
                py,
                "DecisionError",
                format!(
                    "probability must be in (0, 1], got {}",
                    PyFloat::new(py, probability).repr()?
                ),
            ));
        }
        Ok(PyDecision {
            id,
            model: model.unbind(),
            probability,
            context: context.unbind(),
            router,
        })
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let router = self.router.map_or_else(|| "None".to_owned(), |r| r.to_string());
        Ok(format!(
            "Decision(id={}, model={}, probability={}, context={}, router={router})",
            self.id,
            self.model.bind(py).repr()?,
            PyFloat::new(py, self.probability).repr()?,
            self.context.bind(py).repr()?
        ))
    }

    fn __richcmp__(&self, other: &Bound<'_, PyAny>, op: CompareOp) -> PyResult<Py<PyAny>> {
        let py = other.py();
        let Ok(other) = other.cast::<PyDecision>() else {
            return Ok(py.NotImplemented());
        };
        let equal = self.key(py)?.eq(other.get().key(py)?)?;
        Ok(match op {
            CompareOp::Eq => equal.into_pyobject(py)?.to_owned().into_any().unbind(),
            CompareOp::Ne => (!equal).into_pyobject(py)?.to_owned().into_any().unbind(),
            _ => py.NotImplemented(),
        })
    }

    fn __hash__(&self, py: Python<'_>) -> PyResult<isize> {
        self.key(py)?.hash()
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        Ok((slf.get_type().into_any(), slf.get().key(slf.py())?))
    }
}
