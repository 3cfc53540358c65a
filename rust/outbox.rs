//! The outbox of a replica sharing its learned state (issue 12, docs/design.md): the feedback
//! events it has settled and not yet seen acknowledged by the shared log, in order.
//!
//! Feedback pushes an event here in the same call that settles its decision, so the hot path
//! stays one call into the core. The publisher (one thread) takes events in order, encodes them
//! into stream entries (see `events.rs`) without holding the queue, and acknowledges them once
//! the log has stored them. The queue is bounded: beyond `capacity` events waiting or in flight,
//! new events are dropped and counted, never silently.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::events::{self, Wire};
use crate::reward::Observation;

/// One settled feedback, numbered in the order the replica publishes it.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub seq: u64,
    pub context: String,
    pub arm: usize,
    pub observation: Observation,
    pub reward: f64,
    pub probability: Option<f64>,
}

/// What the outbox holds and has done, for status reports and `sync`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// The sequence number of the last event queued (events are numbered 1, 2, 3...).
    pub last: u64,
    /// Every event up to this sequence number has been acknowledged by the log.
    pub acknowledged: u64,
    /// Events waiting or in flight: queued and not yet acknowledged.
    pub buffered: usize,
    /// Events refused because the outbox was full.
    pub dropped: u64,
}

#[derive(Default)]
struct Queue {
    /// The replica the events are published as (a new one after a fork, see `restart`).
    replica: String,
    waiting: VecDeque<Event>,
    /// Taken by the publisher, not acknowledged yet (they follow `acknowledged` in order).
    in_flight: usize,
    last: u64,
    acknowledged: u64,
    dropped: u64,
    /// The publisher sleeps on `Outbox::ready`: a push must wake it. Tracked so that pushes
    /// while it works cost no system call.
    publisher_asleep: bool,
    closed: bool,
}

/// A bounded, ordered queue of events between the hot path and the publisher.
pub struct Outbox {
    models: Vec<String>,
    capacity: usize,
    queue: Mutex<Queue>,
    ready: Condvar,
}

impl Outbox {
    /// The outbox of replica `replica` of a router with pool `models`, holding at most
    /// `capacity` unacknowledged events.
    pub fn new(replica: &str, models: &[String], capacity: usize) -> Result<Self> {
        if capacity == 0 {
            return Err(Error::parameter("buffer", 0, "at least 1 event"));
        }
        Ok(Outbox {
            models: models.to_vec(),
            capacity,
            queue: Mutex::new(Queue {
                replica: replica.to_owned(),
                ..Queue::default()
            }),
            ready: Condvar::new(),
        })
    }

    /// The queue; every update leaves it consistent, so a panic elsewhere cannot poison it.
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queue an event after the last one; `false` (and counted) when the outbox is full.
    pub fn push(
        &self,
        context: &str,
        arm: usize,
        observation: Observation,
        reward: f64,
        probability: Option<f64>,
    ) -> bool {
        let mut queue = self.queue();
        if queue.waiting.len() + queue.in_flight >= self.capacity {
            queue.dropped += 1;
            return false;
        }
        queue.last += 1;
        let seq = queue.last;
        queue.waiting.push_back(Event {
            seq,
            context: context.to_owned(),
            arm,
            observation,
            reward,
            probability,
        });
        if queue.publisher_asleep {
            queue.publisher_asleep = false;
            self.ready.notify_one();
        }
        true
    }

    /// The publisher's next events in order, at most `max`, waiting up to `timeout` for one if
    /// none is queued; empty once closed and drained (or on timeout). They stay counted as
    /// buffered until [`Outbox::acknowledge`]d.
    pub fn take(&self, max: usize, timeout: Duration) -> Vec<Event> {
        let deadline = Instant::now() + timeout;
        let mut queue = self.queue();
        while queue.waiting.is_empty() && !queue.closed {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            queue.publisher_asleep = true;
            queue = self
                .ready
                .wait_timeout(queue, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            queue.publisher_asleep = false;
        }
        let count = max.min(queue.waiting.len());
        queue.in_flight += count;
        queue.waiting.drain(..count).collect()
    }

    /// The log stored the `count` oldest events in flight; returns the sequence number up to
    /// which everything is acknowledged.
    pub fn acknowledge(&self, count: usize) -> u64 {
        let mut queue = self.queue();
        let count = count.min(queue.in_flight);
        queue.in_flight -= count;
        queue.acknowledged += count as u64;
        queue.acknowledged
    }

    /// Start again as replica `replica`, empty and open, numbering from 1: in a child process
    /// after `fork()`, whose copy of the queue holds the parent's events (the parent publishes
    /// them) and whose publisher thread does not exist.
    pub fn restart(&self, replica: &str) {
        *self.queue() = Queue {
            replica: replica.to_owned(),
            ..Queue::default()
        };
    }

    /// Stop waiting: `take` returns what is left, then nothing, without waiting.
    pub fn close(&self) {
        self.queue().closed = true;
        self.ready.notify_all();
    }

    #[must_use]
    pub fn counts(&self) -> Counts {
        let queue = self.queue();
        Counts {
            last: queue.last,
            acknowledged: queue.acknowledged,
            buffered: queue.waiting.len() + queue.in_flight,
            dropped: queue.dropped,
        }
    }

    /// `events` as stream entries of at most `per_entry` events each, in order.
    pub fn encode(&self, events: &[Event], per_entry: usize) -> Result<Vec<Vec<u8>>> {
        let replica = self.queue().replica.clone();
        events
            .chunks(per_entry.max(1))
            .map(|chunk| {
                let wire: Vec<Wire<'_>> = chunk
                    .iter()
                    .map(|event| {
                        let o = event.observation;
                        let model = self.models.get(event.arm).map_or("", String::as_str);
                        let context = event.context.as_str();
                        (
                            event.seq,
                            context,
                            model,
                            o.accuracy,
                            o.cost,
                            o.latency,
                            event.reward,
                            event.probability,
                        )
                    })
                    .collect();
                events::encode(&replica, &wire)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Entry;
    use crate::router::Router;
    use crate::router::tests::{automaton, config};

    fn observation() -> Observation {
        Observation::new(0.5, 0.25, 1.5).unwrap()
    }

    fn outbox(capacity: usize) -> Outbox {
        Outbox::new("r1", &["a".to_owned(), "b".to_owned()], capacity).unwrap()
    }

    #[test]
    fn events_are_numbered_taken_in_order_and_acknowledged() {
        let outbox = outbox(10);
        for context in ["x", "y", "z"] {
            assert!(outbox.push(context, 1, observation(), 0.5, Some(0.5)));
        }
        let first = outbox.take(2, Duration::ZERO);
        assert_eq!(first.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(
            outbox.counts(),
            Counts {
                last: 3,
                acknowledged: 0,
                buffered: 3,
                dropped: 0
            }
        );
        assert_eq!(outbox.acknowledge(2), 2);
        let rest = outbox.take(10, Duration::ZERO);
        assert_eq!(rest.iter().map(|e| e.context.as_str()).collect::<Vec<_>>(), ["z"]);
        assert_eq!(outbox.acknowledge(1), 3);
        assert_eq!(outbox.counts().buffered, 0);
        assert!(outbox.take(10, Duration::ZERO).is_empty());
    }

    #[test]
    fn a_full_outbox_drops_and_counts_in_flight_events_included() {
        let outbox = outbox(2);
        assert!(outbox.push("x", 0, observation(), 0.5, None));
        assert_eq!(outbox.take(1, Duration::ZERO).len(), 1);
        assert!(outbox.push("x", 0, observation(), 0.5, None));
        assert!(!outbox.push("x", 0, observation(), 0.5, None));
        let counts = outbox.counts();
        assert_eq!((counts.last, counts.buffered, counts.dropped), (2, 2, 1));
        outbox.acknowledge(1);
        assert!(
            outbox.push("x", 0, observation(), 0.5, None),
            "room again once acknowledged"
        );
        assert_eq!(outbox.counts().last, 3, "a dropped event takes no sequence number");
        assert!(Outbox::new("r", &[], 0).is_err());
    }

    #[test]
    fn a_closed_outbox_hands_out_what_is_left_then_nothing_without_waiting() {
        let outbox = outbox(4);
        assert!(outbox.push("x", 0, observation(), 0.5, None));
        outbox.close();
        assert_eq!(outbox.take(4, Duration::from_secs(3600)).len(), 1);
        assert!(outbox.take(4, Duration::from_secs(3600)).is_empty());
    }

    #[test]
    fn a_restarted_outbox_is_empty_open_and_numbers_from_one_as_another_replica() {
        let outbox = outbox(4);
        assert!(outbox.push("x", 0, observation(), 0.5, None));
        assert!(outbox.push("x", 0, observation(), 0.5, None));
        assert_eq!(outbox.take(1, Duration::ZERO).len(), 1);
        outbox.close();
        outbox.restart("child");
        assert_eq!(outbox.counts(), Counts::default());
        assert!(outbox.push("y", 1, observation(), 0.5, None));
        let events = outbox.take(4, Duration::ZERO);
        assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [1]);
        let entry = outbox.encode(&events, 10).unwrap();
        assert_eq!(Entry::decode(&entry[0]).unwrap().replica, "child");
    }

    #[test]
    fn a_push_wakes_the_waiting_publisher() {
        let outbox = std::sync::Arc::new(outbox(4));
        let publisher = {
            let outbox = outbox.clone();
            std::thread::spawn(move || outbox.take(4, Duration::from_secs(3600)))
        };
        assert!(outbox.push("x", 1, observation(), 0.5, None));
        let taken = publisher.join().unwrap();
        assert_eq!(taken.len(), 1, "woken by the push, not by the hour-long timeout");
    }

    #[test]
    fn entries_decode_and_apply_like_the_events() {
        let outbox = outbox(10);
        for (i, context) in ["x", "y", "x"].into_iter().enumerate() {
            assert!(outbox.push(context, i % 2, observation(), 0.5, [None, Some(0.25)][i % 2]));
        }
        let entries = outbox.encode(&outbox.take(10, Duration::ZERO), 2).unwrap();
        assert_eq!(entries.len(), 2);
        let config = config(automaton());
        let mut through_log = Router::new(config.clone(), 1).unwrap();
        let mut direct = Router::new(config, 2).unwrap();
        let mut last = 0;
        for bytes in &entries {
            let entry = Entry::decode(bytes).unwrap();
            assert_eq!(entry.replica, "r1");
            let done = through_log.apply_entry(&entry, last);
            assert_eq!(done.rejected, 0);
            last = done.last;
        }
        assert_eq!(last, 3);
        for (i, context) in ["x", "y", "x"].into_iter().enumerate() {
            let model = ["a", "b"][i % 2];
            direct
                .observe(context, model, observation(), [None, Some(0.25)][i % 2])
                .unwrap();
        }
        assert_eq!(through_log.learned().unwrap(), direct.learned().unwrap());
    }
}
