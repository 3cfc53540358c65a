//! `RouterCore`: the core router behind one lock, for `pickllm.Router` to wrap.
//!
//! `frozen` plus a `Mutex` so that concurrent calls from threads (or free-threaded Python) never
//! hit PyO3's runtime borrow check ("Already borrowed"). Single calls do not detach from the
//! interpreter: they take well under a microsecond, far less than detaching costs. The lock is
//! never held while Python code may run, so a thread waiting for it cannot deadlock with one
//! that holds it. `snapshot` is the exception that detaches: it copies the state under the lock
//! and encodes the copy without the lock and without the interpreter, so other threads keep
//! routing while a large router is saved.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};

use super::decision::PyDecision;
use super::errors::{internal, pickllm_error, utf8, wrong_type};
use super::outbox::PyOutbox;
use crate::error::Error;
use crate::events::Entry;
use crate::learned::ParsedLearned;
use crate::outbox::Outbox;
use crate::reward::Observation;
use crate::router::{Config, Router};
use crate::subset::Subset;

/// Why `select(prompt=...)` fails on a router without prompt contexts, and the fix.
const NO_PROMPT_CONTEXTS: &str = "select(prompt=...) needs a router that discovers contexts \
    from prompts: Router(models, contexts=PromptContexts(...)); this router has none, so name \
    the context instead (select(context=...)), or leave both out for the default context";

/// Log a warning on the `pickllm.router` logger: `new` contexts restarted by the policy's
/// change detector during one call (its own feedback or a replica's events), `total` in all.
/// Detections are rare; the check that calls this costs two integer reads per call.
fn log_changes(new: u64, total: u64) {
    Python::attach(|py| {
        let logged = py.import("logging").and_then(|logging| {
            let logger = logging.call_method1("getLogger", ("pickllm.router",))?;
            logger.call_method1(
                "warning",
                (
                    "change detected: %d context(s) restarted their learner (%d changes in all, see Router.stats())",
                    new,
                    total,
                ),
            )
        });
        // Logging must not fail a feedback that was applied; a broken handler is its own report.
        if let Err(error) = logged {
            error.write_unraisable(py, None);
        }
    });
}

#[pyclass(name = "RouterCore", module = "pickllm._core", frozen)]
pub struct PyRouterCore {
    router: Mutex<Router>,
    /// Set if the core ever panicked: its state may be half-updated, so it refuses all calls.
    broken: AtomicBool,
    /// Model names as Python strings, handed out in every `Decision` without a new allocation.
    models: Vec<Py<PyString>>,
    default_context: Py<PyString>,
    /// The router's identity, written on every `Decision`; fixed for the core's life.
    identity: u64,
    /// Set once the router shares its learned state: feedback then settles and queues here.
    outbox: OnceLock<Arc<Outbox>>,
}

impl PyRouterCore {
    fn wrap(py: Python<'_>, router: Router) -> Self {
        let models = router
            .config()
            .models
            .iter()
            .map(|m| PyString::intern(py, m).unbind())
            .collect();
        let default_context = PyString::new(py, &router.config().default_context).unbind();
        let identity = router.identity();
        PyRouterCore {
            identity,
            router: Mutex::new(router),
            broken: AtomicBool::new(false),
            models,
            default_context,
            outbox: OnceLock::new(),
        }
    }

    /// Run `f` on the router under the lock. Errors are converted after the lock is released;
    /// a panic marks the router broken and becomes a Python exception, never a `PanicException`.
    fn with<T>(&self, f: impl FnOnce(&mut Router) -> Result<T, Error>) -> PyResult<T> {
        if self.broken.load(Ordering::Relaxed) {
            return Err(internal("an earlier call panicked"));
        }
        let (outcome, before, after) = {
            let mut guard = self.router.lock().map_err(|_| internal("lock poisoned"))?;
            let before = guard.changes();
            let outcome = catch_unwind(AssertUnwindSafe(|| f(&mut guard)));
            (outcome, before, guard.changes())
        };
        if after > before {
            log_changes(after - before, after);
        }
        self.settle(outcome)
    }

    /// A caught panic marks the router broken; errors become Python exceptions.
    fn settle<T>(&self, outcome: std::thread::Result<Result<T, Error>>) -> PyResult<T> {
        match outcome {
            Ok(result) => result.map_err(PyErr::from),
            Err(_) => {
                self.broken.store(true, Ordering::Relaxed);
                Err(internal("panic"))
            }
        }
    }

    /// The mask of models allowed by `allowed` (all when None) minus `exclude`.
    fn subset_mask(
        &self,
        py: Python<'_>,
        exclude: Option<&Bound<'_, PyAny>>,
        allowed: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Option<Vec<bool>>> {
        if exclude.is_none() && allowed.is_none() {
            return Ok(None);
        }
        // (name, allow?) in order: `allowed` first, so that an excluded model stays out.
        let mut names: Vec<(Bound<'_, PyString>, bool)> = Vec::new();
        for (argument, value, allow) in [("allowed", allowed, true), ("exclude", exclude, false)] {
            let Some(value) = value else { continue };
            if value.is_instance_of::<PyString>() {
                return Err(wrong_type(
                    py,
                    argument,
                    "a collection of model names, not one string",
                    value,
                ));
            }
            let items = value
                .try_iter()
                .map_err(|_| wrong_type(py, argument, "a collection of model names", value))?;
            for item in items {
                let item = item?;
                names.push((as_str(py, argument, &item)?.clone(), allow));
            }
        }
        let mut mask = vec![allowed.is_none(); self.models.len()];
        for (name, allow) in &names {
            let name = utf8(py, "model name", name)?;
            let index = self.with(|router| router.model_index(name))?;
            if let Some(slot) = mask.get_mut(index) {
                *slot = *allow;
            }
        }
        Ok(Some(mask))
    }
}

fn as_str<'a, 'py>(
    py: Python<'py>,
    argument: &str,
    value: &'a Bound<'py, PyAny>,
) -> PyResult<&'a Bound<'py, PyString>> {
    value
        .cast::<PyString>()
        .map_err(|_| wrong_type(py, argument, "a str", value))
}

fn as_f64(py: Python<'_>, argument: &str, value: &Bound<'_, PyAny>) -> PyResult<f64> {
    value
        .extract::<f64>()
        .map_err(|_| wrong_type(py, argument, "a number", value))
}

/// An outcome given by names, as `observe` and `credit` take it: the context's and the model's
/// names and the observation, checked in this order (the first bad argument is the one named).
fn outcome<'a, 'py>(
    py: Python<'py>,
    context: &'a Bound<'py, PyAny>,
    model: &'a Bound<'py, PyAny>,
    accuracy: &Bound<'py, PyAny>,
    cost: &Optional<'py>,
    latency: &Optional<'py>,
) -> PyResult<(&'a str, &'a str, Observation)> {
    let context = utf8(py, "context", as_str(py, "context", context)?)?;
    let model = utf8(py, "model", as_str(py, "model", model)?)?;
    let observation = Observation::new(
        as_f64(py, "accuracy", accuracy)?,
        cost.as_f64_or(py, "cost", 0.0)?,
        latency.as_f64_or(py, "latency", 0.0)?,
    )?;
    Ok((context, model, observation))
}

/// An optional argument: absent (its default applies) or given, whatever it is. Unlike
/// `Option`, an explicit `None` counts as given, so it is rejected with `ArgumentTypeError` like
/// any other non-number, exactly as when the argument is required.
enum Optional<'py> {
    Absent,
    Given(Bound<'py, PyAny>),
}

impl<'a, 'py> FromPyObject<'a, 'py> for Optional<'py> {
    type Error = PyErr;

    fn extract(value: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        Ok(Optional::Given(value.to_owned()))
    }
}

impl Optional<'_> {
    fn as_f64_or(&self, py: Python<'_>, argument: &str, default: f64) -> PyResult<f64> {
        match self {
            Optional::Absent => Ok(default),
            Optional::Given(value) => as_f64(py, argument, value),
        }
    }
}

#[pymethods]
impl PyRouterCore {
    /// Build from the JSON of a `Config` (models, policy, reward, prior, max_pending,
    /// default_context) and a seed.
    #[new]
    fn new(py: Python<'_>, config_json: &str, seed: u64) -> PyResult<Self> {
        let config: Config = serde_json::from_str(config_json)
            .map_err(|e| Error::parameter("config", "the given JSON", format!("a valid router config ({e})")))?;
        Ok(Self::wrap(py, Router::new(config, seed)?))
    }

    /// The same signature as `pickllm.Router.select`, which binds this method directly on its
    /// instances so that the hot path crosses no Python frame. Such a router has no prompt
    /// mapper: a `prompt` is refused with an error that names the fix.
    #[pyo3(signature = (context=None, *, exclude=None, allowed=None, prompt=None))]
    fn select(
        &self,
        py: Python<'_>,
        context: Option<&Bound<'_, PyAny>>,
        exclude: Option<&Bound<'_, PyAny>>,
        allowed: Option<&Bound<'_, PyAny>>,
        prompt: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyDecision> {
        if prompt.is_some_and(|p| !p.is_none()) {
            return Err(pickllm_error(py, "ConfigError", NO_PROMPT_CONTEXTS.to_owned()));
        }
        let context = match context {
            Some(value) if !value.is_none() => Some(as_str(py, "context", value)?),
            _ => None,
        };
        let name = context.map(|c| utf8(py, "context", c)).transpose()?;
        let mask = self.subset_mask(py, exclude, allowed)?;
        let selection = self.with(|router| router.select(name, Subset(mask.as_deref())))?;
        let model = self
            .models
            .get(selection.arm)
            .ok_or_else(|| internal("model index out of range"))?;
        Ok(PyDecision {
            id: selection.id,
            model: model.clone_ref(py),
            probability: selection.probability,
            context: context.map_or_else(|| self.default_context.clone_ref(py), |c| c.clone().unbind()),
            router: Some(self.identity),
        })
    }

    /// Apply an observation to a decision; returns the reward used. The same signature as
    /// `pickllm.Router.feedback` (see `select`).
    #[pyo3(
        signature = (decision, *, accuracy, cost = Optional::Absent, latency = Optional::Absent),
        text_signature = "($self, decision, *, accuracy, cost=0.0, latency=0.0)"
    )]
    fn feedback(
        &self,
        py: Python<'_>,
        decision: &Bound<'_, PyAny>,
        accuracy: &Bound<'_, PyAny>,
        cost: Optional<'_>,
        latency: Optional<'_>,
    ) -> PyResult<f64> {
        let decision = decision
            .cast::<PyDecision>()
            .map_err(|_| wrong_type(py, "decision", "a Decision", decision))?;
        let decision = decision.get();
        let observation = Observation::new(
            as_f64(py, "accuracy", accuracy)?,
            cost.as_f64_or(py, "cost", 0.0)?,
            latency.as_f64_or(py, "latency", 0.0)?,
        )?;
        let model = utf8(py, "model", decision.model.bind(py))?;
        let context = utf8(py, "context", decision.context.bind(py))?;
        let (id, issuer, probability) = (decision.id, decision.router, decision.probability);
        let outbox = self.outbox.get();
        self.with(|router| {
            if let Some(issuer) = issuer {
                router.check_issuer(issuer, id)?;
            }
            let Some(outbox) = outbox else {
                return router.feedback(id, model, context, observation);
            };
            // Shared: settled here, learned from the shared log like every replica's events.
            let arm = router.model_index(model)?;
            let reward = router.settle(id, model, context, observation)?;
            outbox.push(context, arm, observation, reward, Some(probability));
            Ok(reward)
        })
    }

    /// This router's id, as written on its decisions (`Decision.router`).
    #[getter]
    fn identity(&self) -> u64 {
        self.identity
    }

    /// Learn from an outcome without a pending decision (a shared-log event, an imported log
    /// line); returns the reward used.
    #[pyo3(
        signature = (context, model, *, accuracy, cost = Optional::Absent, latency = Optional::Absent, probability = None),
        text_signature = "($self, context, model, *, accuracy, cost=0.0, latency=0.0, probability=None)"
    )]
    #[allow(clippy::too_many_arguments)] // the Python signature, keyword arguments included
    fn observe(
        &self,
        py: Python<'_>,
        context: &Bound<'_, PyAny>,
        model: &Bound<'_, PyAny>,
        accuracy: &Bound<'_, PyAny>,
        cost: Optional<'_>,
        latency: Optional<'_>,
        probability: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<f64> {
        let (context, model, observation) = outcome(py, context, model, accuracy, &cost, &latency)?;
        let probability = match probability {
            Some(value) if !value.is_none() => Some(as_f64(py, "probability", value)?),
            _ => None,
        };
        let Some(outbox) = self.outbox.get() else {
            return self.with(|router| router.observe(context, model, observation, probability));
        };
        self.with(|router| {
            let (arm, reward) = router.assess(model, observation, probability)?;
            outbox.push(context, arm, observation, reward, probability);
            Ok(reward)
        })
    }

    /// Learn in `context` from an outcome already learned from in another context, without
    /// pooling it again (`Router::credit`): the prompt mapper's replay of warm-up feedback into
    /// clusters. For a router that learns alone: with shared state the replay is published as
    /// observations (`observe`), so a shared router refuses this.
    #[pyo3(
        signature = (context, model, *, accuracy, cost = Optional::Absent, latency = Optional::Absent, probability),
        text_signature = "($self, context, model, *, accuracy, cost=0.0, latency=0.0, probability)"
    )]
    #[allow(clippy::too_many_arguments)] // the Python signature, keyword arguments included
    fn credit(
        &self,
        py: Python<'_>,
        context: &Bound<'_, PyAny>,
        model: &Bound<'_, PyAny>,
        accuracy: &Bound<'_, PyAny>,
        cost: Optional<'_>,
        latency: Optional<'_>,
        probability: &Bound<'_, PyAny>,
    ) -> PyResult<f64> {
        if self.outbox.get().is_some() {
            return Err(internal("credit() on a router that shares its state"));
        }
        let (context, model, observation) = outcome(py, context, model, accuracy, &cost, &latency)?;
        let probability = as_f64(py, "probability", probability)?;
        self.with(|router| router.credit(context, model, observation, probability))
    }

    /// Share the learned state as replica `replica`: from now on `feedback` and `observe` learn
    /// nothing here but settle, check and queue their events (at most `buffer` unacknowledged;
    /// beyond that dropped and counted) in the returned outbox, which a publisher sends to the
    /// shared log; the router learns with `apply_entry`. Once per router.
    fn share(&self, replica: &str, buffer: usize) -> PyResult<PyOutbox> {
        let models = self.with(|router| Ok(router.config().models.clone()))?;
        let outbox = Arc::new(Outbox::new(replica, &models, buffer)?);
        self.outbox
            .set(outbox.clone())
            .map_err(|_| Error::parameter("share", "a second call", "one call per router"))?;
        Ok(PyOutbox { outbox })
    }

    /// Learn from one shared-state stream entry (see `events.rs`). `seen` maps each replica to
    /// the highest sequence number applied; it is read and updated here. Returns (applied,
    /// rejected, lost); an entry of another format raises. Applying holds the interpreter: detached,
    /// the applier had to win it back from a busy routing thread after every entry (at the
    /// switch interval), which cut replication to a quarter (docs/performance.md).
    fn apply_entry(&self, blob: &[u8], seen: &Bound<'_, PyDict>) -> PyResult<(u64, u64, u64)> {
        let entry = Entry::decode(blob)?;
        let after = match seen.get_item(&entry.replica)? {
            Some(value) => value.extract::<u64>()?,
            None => 0,
        };
        let done = self.with(|router| Ok(router.apply_entry(&entry, after)))?;
        seen.set_item(&entry.replica, done.last)?;
        Ok((done.applied, done.rejected, done.lost))
    }

    /// The learned part alone as JSON bytes (see `learned.rs`). Like `snapshot`: only the
    /// capture holds the lock (and the interpreter); encoding and copying it out run detached
    /// from both, so a shared-state checkpoint of a large router pauses no other thread.
    fn learned<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let capture = self.with(|router| Ok(router.capture_learned()))?;
        let encoded = py.detach(|| catch_unwind(AssertUnwindSafe(|| capture.encode())));
        let bytes = self.settle(encoded)?;
        PyBytes::new_with(py, bytes.len(), |buffer| {
            py.detach(move || {
                buffer.copy_from_slice(&bytes);
                drop(bytes);
            });
            Ok(())
        })
    }

    /// Install a learned part (a shared-state checkpoint) without pausing other threads:
    /// parsed and validated detached from the interpreter and the lock, then installed in a
    /// fork of the contexts, detached too, and swapped in under the lock (see
    /// `Router::swap_installed`). If the router's contexts changed meanwhile, the fork is
    /// stale and built again; after `INSTALL_ATTEMPTS` stale forks (contexts created faster than
    /// a fork is built), installed in place under the lock. An error changes nothing.
    fn restore_learned(&self, py: Python<'_>, blob: &[u8]) -> PyResult<()> {
        const INSTALL_ATTEMPTS: usize = 3;
        let config = self.with(|router| Ok(router.config().clone()))?;
        let parsed = py.detach(|| catch_unwind(AssertUnwindSafe(|| ParsedLearned::parse(blob, &config))));
        let parsed = self.settle(parsed)?;
        for _ in 0..INSTALL_ATTEMPTS {
            let fork = self.with(|router| Ok(router.fork_contexts()))?;
            let installed = py.detach(|| catch_unwind(AssertUnwindSafe(|| fork.install(&parsed))));
            let installed = self.settle(installed)?;
            let swapped = self.with(|router| Ok(router.swap_installed(installed)))?;
            // Either set of contexts (the replaced one, or the stale fork) holds learners that
            // no other copy shares: freed detached, like the parsed part once installed
            // (freeing 100,000 names and learners attached paused every thread ~150 ms).
            if swapped.is_ok() {
                py.detach(move || drop((swapped, parsed)));
                return Ok(());
            }
            py.detach(move || drop(swapped));
        }
        self.with(|router| router.install_learned(parsed))
    }

    fn probabilities(&self, py: Python<'_>, context: &Bound<'_, PyAny>) -> PyResult<Vec<f64>> {
        let context = utf8(py, "context", as_str(py, "context", context)?)?;
        self.with(|router| Ok(router.probabilities(context)))
    }

    fn converged(&self, py: Python<'_>, context: &Bound<'_, PyAny>) -> PyResult<Option<Py<PyString>>> {
        let context = utf8(py, "context", as_str(py, "context", context)?)?;
        let arm = self.with(|router| Ok(router.converged(context)))?;
        Ok(arm.and_then(|arm| self.models.get(arm)).map(|m| m.clone_ref(py)))
    }

    fn feedback_counts(&self, py: Python<'_>, context: &Bound<'_, PyAny>) -> PyResult<Vec<u64>> {
        let context = utf8(py, "context", as_str(py, "context", context)?)?;
        self.with(|router| Ok(router.feedback_counts(context)))
    }

    fn contexts(&self) -> PyResult<Vec<String>> {
        self.with(|router| Ok(router.contexts().into_iter().map(str::to_owned).collect()))
    }

    /// `(learned, unlearned, evicted, dropped, changes)`: contexts held, let go (see `Counts`),
    /// and restarted by the policy's change detector.
    fn context_counts(&self) -> PyResult<(u32, u32, u64, u64, u64)> {
        self.with(|router| {
            let c = router.context_counts();
            Ok((c.learned, c.unlearned, c.evicted, c.dropped, router.changes()))
        })
    }

    fn pending(&self) -> PyResult<usize> {
        self.with(|router| Ok(router.pending()))
    }

    /// The configuration as JSON, the same shape `__new__` takes.
    fn config_json(&self) -> PyResult<String> {
        self.with(|router| {
            serde_json::to_string(router.config()).map_err(|e| Error::snapshot(format!("cannot encode config: {e}")))
        })
    }

    /// The router as snapshot bytes, framed with `attachment` `(meta, rest)` after them if
    /// given (the prompt mapper's state, see `Capture::write_with`). Only the copy of the state
    /// holds the lock (and the interpreter); encoding it, the slow part, runs detached from both.
    #[pyo3(signature = (attachment=None))]
    fn snapshot<'py>(&self, py: Python<'py>, attachment: Option<(&[u8], &[u8])>) -> PyResult<Bound<'py, PyBytes>> {
        let capture = self.with(|router| Ok(router.capture()))?;
        let encoded = py.detach(|| catch_unwind(AssertUnwindSafe(|| capture.encode_with(attachment))));
        let bytes = self.settle(encoded)?;
        // Copying tens of megabytes into the new object is detached too (no other thread can
        // see the object before it is returned), and so is freeing them, which unmaps the
        // encoder's buffer (15-30 ms for 88 MB). Allocating the object and PyO3's zeroing of it
        // hold the interpreter: the one pause left (docs/performance.md).
        PyBytes::new_with(py, bytes.len(), |buffer| {
            py.detach(move || {
                buffer.copy_from_slice(&bytes);
                drop(bytes);
            });
            Ok(())
        })
    }

    /// Write the snapshot (framed with `attachment`, as `snapshot` does) to the existing file
    /// `path`, truncating it: `Router.save` calls this on its temporary file. Only the copy of
    /// the state holds the interpreter; the encoding runs detached, straight into the file (no
    /// buffer of the snapshot's size to allocate, fault in and free; see `Capture::write_to`).
    #[pyo3(signature = (path, attachment=None))]
    fn write_snapshot(
        &self,
        py: Python<'_>,
        path: std::path::PathBuf,
        attachment: Option<(&[u8], &[u8])>,
    ) -> PyResult<()> {
        let capture = self.with(|router| Ok(router.capture()))?;
        let written = py.detach(|| {
            catch_unwind(AssertUnwindSafe(|| {
                let mut file = std::fs::OpenOptions::new().write(true).truncate(true).open(&path)?;
                capture.write_with(&mut file, attachment)
            }))
        });
        Ok(self.settle(written.map(Ok))??)
    }

    /// Parsing and validating a large snapshot runs detached from the interpreter too.
    #[staticmethod]
    fn restore(py: Python<'_>, blob: &[u8]) -> PyResult<Self> {
        let router = py.detach(|| Router::restore(blob))?;
        Ok(Self::wrap(py, router))
    }
}
