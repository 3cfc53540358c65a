//! The one error type of the core. Every fallible operation returns `Result<T, Error>`; the core
//! never panics on input, and a rejected call leaves the router exactly as it was.

use std::fmt;

/// Why a decision id was refused by `feedback`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecisionProblem {
    /// The id is beyond anything this router has issued.
    NeverIssued,
    /// Feedback for this decision was already applied.
    AlreadyUsed,
    /// More than `max_pending` decisions were issued after it, so its record was dropped.
    Expired { max_pending: usize },
    /// The id is pending, but the model or context given with it differ from the record.
    Mismatch {
        field: &'static str,
        expected: String,
        got: String,
    },
    /// The decision was issued by another router (`issuer`), not this one (`router`).
    Foreign { issuer: u64, router: u64 },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Error {
    /// A configuration value outside its domain.
    InvalidParameter {
        field: String,
        value: String,
        expected: String,
    },
    /// An observation (accuracy, cost, latency, reward) outside its domain.
    InvalidObservation {
        field: &'static str,
        value: f64,
        expected: &'static str,
    },
    /// A model name that is not in the pool.
    UnknownModel(String),
    /// The subset allowed for one selection is empty.
    NoEligibleModel,
    /// A decision `feedback` cannot accept.
    Decision { id: u64, problem: DecisionProblem },
    /// A snapshot that cannot be restored.
    Snapshot(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Numbers as Python prints them, since that is what users read: Rust's `NaN` is `nan` there.
fn pythonic(value: String) -> String {
    if value == "NaN" { "nan".to_owned() } else { value }
}

impl Error {
    pub(crate) fn parameter(field: impl Into<String>, value: impl fmt::Display, expected: impl Into<String>) -> Self {
        Error::InvalidParameter {
            field: field.into(),
            value: pythonic(value.to_string()),
            expected: expected.into(),
        }
    }

    pub(crate) fn snapshot(message: impl Into<String>) -> Self {
        Error::Snapshot(message.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidParameter { field, value, expected } => {
                write!(f, "{field} must be {expected}, got {value}")
            }
            Error::InvalidObservation { field, value, expected } => {
                write!(f, "{field} must be {expected}, got {}", pythonic(value.to_string()))
            }
            Error::UnknownModel(name) => write!(f, "unknown model {name:?}: not in the router's pool"),
            Error::NoEligibleModel => write!(f, "no model left to select: the allowed subset is empty"),
            Error::Decision { id, problem } => match problem {
                DecisionProblem::NeverIssued => write!(f, "decision {id} was never issued by this router"),
                DecisionProblem::AlreadyUsed => write!(f, "decision {id} already received feedback"),
                DecisionProblem::Expired { max_pending } => write!(
                    f,
                    "decision {id} expired: more than max_pending={max_pending} decisions were issued after it"
                ),
                DecisionProblem::Mismatch { field, expected, got } => write!(
                    f,
                    "decision {id} does not match this router's record: {field} is {got:?}, the router issued {expected:?}"
                ),
                DecisionProblem::Foreign { issuer, router } => write!(
                    f,
                    "decision {id} was issued by another router (router={issuer}), not this one (router={router})"
                ),
            },
            Error::Snapshot(message) => write!(f, "invalid snapshot: {message}"),
        }
    }
}

impl std::error::Error for Error {}
