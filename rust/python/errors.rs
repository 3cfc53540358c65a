//! Core errors become the exception classes of `pickllm.errors`, which are defined in Python so
//! that each can derive from both `PickLLMError` and `ValueError` (or `TypeError`).

use pyo3::prelude::*;
use pyo3::types::PyType;

use crate::error::Error;

fn class_of(error: &Error) -> &'static str {
    match error {
        Error::InvalidParameter { .. } => "ConfigError",
        Error::InvalidObservation { .. } => "FeedbackError",
        Error::UnknownModel(_) => "UnknownModelError",
        Error::NoEligibleModel => "NoEligibleModelError",
        Error::Decision { .. } => "DecisionError",
        Error::Snapshot(_) => "SnapshotError",
    }
}

/// An instance of `pickllm.errors.<class>` with `message`. Must not be called while a router
/// lock is held: importing may run Python code, which may let another thread in.
pub fn pickllm_error(py: Python<'_>, class: &str, message: String) -> PyErr {
    let class = py.import("pickllm.errors").and_then(|module| module.getattr(class));
    match class.and_then(|class| class.cast_into::<PyType>().map_err(PyErr::from)) {
        Ok(class) => PyErr::from_type(class, message),
        Err(import_error) => import_error,
    }
}

impl From<Error> for PyErr {
    fn from(error: Error) -> PyErr {
        Python::attach(|py| pickllm_error(py, class_of(&error), error.to_string()))
    }
}

/// A wrong Python type for an argument: `pickllm.errors.ArgumentTypeError`.
pub fn wrong_type(py: Python<'_>, argument: &str, expected: &str, got: &Bound<'_, PyAny>) -> PyErr {
    let got = got
        .get_type()
        .name()
        .map_or_else(|_| "?".to_owned(), |name| name.to_string());
    pickllm_error(
        py,
        "ArgumentTypeError",
        format!("{argument} must be {expected}, got {got}"),
    )
}

/// A panic inside the core, caught before it reaches Python: a plain `pickllm.PickLLMError`
/// (an `Exception`, never a `BaseException`). Never called with a router lock held.
pub fn internal(what: &str) -> PyErr {
    Python::attach(|py| {
        pickllm_error(
            py,
            "PickLLMError",
            format!(
                "internal error in the pickllm core ({what}); please report it. This router \
                 refuses further calls: restore it from a snapshot"
            ),
        )
    })
}

/// The UTF-8 text of a Python string, or `pickllm.errors.EncodingError` for one that has none
/// (a lone surrogate such as "\udc80", which `str` allows and UTF-8 cannot encode).
pub fn utf8<'a>(py: Python<'_>, argument: &str, value: &'a Bound<'_, pyo3::types::PyString>) -> PyResult<&'a str> {
    value.to_str().map_err(|_| {
        let shown = value.repr().map_or_else(|_| "?".to_owned(), |r| r.to_string());
        pickllm_error(
            py,
            "EncodingError",
            format!("{argument} must be text UTF-8 can encode (no lone surrogates), got {shown}"),
        )
    })
}
