//! `Decision`: what `select` returns and `feedback` takes back.

use pyo3::basic::CompareOp;
use pyo3::prelude::*;
use pyo3::types::{PyFloat, PyString, PyTuple};

/// An immutable record of one routing decision. It can be rebuilt from its four fields (for
/// example from a log line), pickled, compared and hashed.
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
            ],
        )
    }
}

#[pymethods]
impl PyDecision {
    #[new]
    #[pyo3(signature = (id, model, probability, context))]
    fn new(id: u64, model: Bound<'_, PyString>, probability: f64, context: Bound<'_, PyString>) -> Self {
        PyDecision {
            id,
            model: model.unbind(),
            probability,
            context: context.unbind(),
        }
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Decision(id={}, model={}, probability={}, context={})",
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
