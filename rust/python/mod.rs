//! The only code that knows Python: thin wrappers over the core, and error mapping.
//! Nothing here decides anything; each method converts arguments, locks, delegates, converts.

mod decision;
mod errors;
mod floor;
mod functions;
mod outbox;
mod prompt_contexts;
mod replay;
mod router;

use pyo3::prelude::*;

#[pymodule]
mod _core {
    #[pymodule_export]
    use super::decision::PyDecision;
    #[pymodule_export]
    use super::floor::PyFloor;
    #[pymodule_export]
    use super::functions::{compute_reward, validate_policy, validate_reward};
    #[pymodule_export]
    use super::outbox::PyOutbox;
    #[pymodule_export]
    use super::prompt_contexts::PyPromptContexts;
    #[pymodule_export]
    use super::replay::{PyReplaySession, replay_sessions, table_means};
    #[pymodule_export]
    use super::router::PyRouterCore;

    use super::{Bound, PyModule, PyModuleMethods, PyResult};

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        m.add("SNAPSHOT_FORMAT_VERSION", crate::snapshot::FORMAT_VERSION)?;
        m.add("GENERATOR", crate::rng::GENERATOR)?;
        Ok(())
    }
}
