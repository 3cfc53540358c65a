//! `Outbox`: the publisher's side of a shared router's outbox (see `outbox.rs`). The hot path
//! side is `RouterCore.feedback` and `RouterCore.observe`, which queue events into it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::errors::internal;
use crate::error::Error;
use crate::outbox::Outbox;

#[pyclass(name = "Outbox", module = "pickllm._core", frozen)]
pub struct PyOutbox {
    pub outbox: Arc<Outbox>,
}

#[pymethods]
impl PyOutbox {
    /// The next events in order (at most `max_events`) as stream entries of at most
    /// `per_entry` events each, and how many events they hold. Waits up to `timeout` seconds
    /// for a first event, detached from the interpreter, as is the encoding. The events count
    /// as buffered until acknowledged; empty once closed and drained.
    fn take<'py>(
        &self,
        py: Python<'py>,
        max_events: usize,
        per_entry: usize,
        timeout: f64,
    ) -> PyResult<(Vec<Bound<'py, PyBytes>>, usize)> {
        let timeout = Duration::try_from_secs_f64(timeout)
            .map_err(|_| Error::parameter("timeout", timeout, "a number of seconds >= 0"))?;
        let outbox = &self.outbox;
        let taken = py.detach(|| {
            catch_unwind(AssertUnwindSafe(|| {
                let events = outbox.take(max_events, timeout);
                outbox.encode(&events, per_entry).map(|entries| (entries, events.len()))
            }))
        });
        let (entries, count) = taken.map_err(|_| internal("panic"))??;
        Ok((entries.iter().map(|e| PyBytes::new(py, e)).collect(), count))
    }

    /// The log stored the `count` oldest events taken; returns the sequence number up to which
    /// every event is acknowledged.
    fn acknowledge(&self, count: usize) -> u64 {
        self.outbox.acknowledge(count)
    }

    /// Start again as replica `replica`, empty (see `Outbox::restart`): in a forked child.
    fn restart(&self, replica: &str) {
        self.outbox.restart(replica);
    }

    /// Wake the publisher for good: `take` hands out what is left, then returns at once.
    fn close(&self) {
        self.outbox.close();
    }

    /// (last sequence number queued, acknowledged up to, buffered, dropped).
    fn counts(&self) -> (u64, u64, usize, u64) {
        let c = self.outbox.counts();
        (c.last, c.acknowledged, c.buffered, c.dropped)
    }
}
