//! Entries of the shared-state event stream (docs/design.md): one replica's feedback events in
//! publishing order, as versioned JSON,
//!
//! `{"v": 1, "r": "<replica>", "e": [[seq, context, model, accuracy, cost, latency, reward, probability], ...]}`
//!
//! The format lives here alone: [`encode`] writes it (the outbox's publisher is its only
//! writer), [`Entry::decode`] and [`Router::apply_entry`] read it. Applying an entry here rather
//! than event by event from Python is what keeps a replica's cost per event of the fleet low:
//! every replica applies every event.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::error::{Error, Result};
use crate::reward::Observation;
use crate::router::Router;

/// The entry format this version writes and reads.
pub const EVENTS_VERSION: u64 = 1;

/// One event as every replica writes it:
/// `[seq, context, model, accuracy, cost, latency, reward, probability]`. Read back as this
/// tuple without building a `Value` (the fast path; any other shape, or a string with escapes,
/// is parsed as a `Value` and judged there).
pub type Wire<'a> = (u64, &'a str, &'a str, f64, f64, f64, f64, Option<f64>);

/// A decoded entry: the issuing replica and its events, each still to be parsed and checked
/// (one at a time, so that a malformed event costs only itself).
#[derive(Deserialize)]
pub struct Entry<'a> {
    v: u64,
    #[serde(rename = "r")]
    pub replica: String,
    #[serde(rename = "e", borrow)]
    events: Vec<&'a RawValue>,
}

/// An entry as written; the same fields as [`Entry`], in that order.
#[derive(Serialize)]
struct EntryOut<'a> {
    v: u64,
    r: &'a str,
    e: &'a [Wire<'a>],
}

/// The stream entry of `replica`'s `events`, in order.
pub fn encode(replica: &str, events: &[Wire<'_>]) -> Result<Vec<u8>> {
    let entry = EntryOut {
        v: EVENTS_VERSION,
        r: replica,
        e: events,
    };
    serde_json::to_vec(&entry).map_err(|e| Error::snapshot(format!("cannot encode events: {e}")))
}

/// What applying one entry did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// The highest sequence number of the replica seen so far (copies at or below it skipped).
    pub last: u64,
    pub applied: u64,
    /// Events of the wrong shape or with invalid values, skipped (by every replica alike).
    pub rejected: u64,
    /// Sequence numbers skipped over: events the replica published that never reached this
    /// log (lost with a Redis that restarted empty, say). Counted by every replica alike.
    pub lost: u64,
}

impl<'a> Entry<'a> {
    /// Parse an entry, or say why `bytes` is not one of this format.
    pub fn decode(bytes: &'a [u8]) -> Result<Entry<'a>> {
        let entry: Entry = serde_json::from_slice(bytes).map_err(|e| {
            Error::parameter(
                "event entry",
                "the given bytes",
                format!("JSON of format {EVENTS_VERSION} ({e})"),
            )
        })?;
        if entry.v != EVENTS_VERSION {
            return Err(Error::parameter(
                "event entry",
                format!("format {}", entry.v),
                format!("format {EVENTS_VERSION}"),
            ));
        }
        Ok(entry)
    }
}

impl Router {
    /// Learn from the events of `entry` in order with [`Router::observe`], skipping those with
    /// a sequence number at or below `after` (copies of events already applied).
    pub fn apply_entry(&mut self, entry: &Entry<'_>, after: u64) -> Applied {
        let mut done = Applied {
            last: after,
            ..Applied::default()
        };
        for raw in &entry.events {
            if let Ok(event) = serde_json::from_str::<Wire<'_>>(raw.get()) {
                let seq = event.0;
                if seq > done.last {
                    done.lost += seq - done.last - 1;
                    done.last = seq;
                    if self.apply_typed(event).is_ok() {
                        done.applied += 1;
                    } else {
                        done.rejected += 1;
                    }
                }
                continue;
            }
            let Ok(event) = serde_json::from_str::<Value>(raw.get()) else {
                done.rejected += 1;
                continue;
            };
            let event = &event;
            let Some(seq) = event.get(0).and_then(Value::as_u64) else {
                done.rejected += 1;
                continue;
            };
            if seq <= done.last {
                continue;
            }
            done.lost += seq - done.last - 1;
            done.last = seq;
            if self.apply_event(event).is_ok() {
                done.applied += 1;
            } else {
                done.rejected += 1;
            }
        }
        done
    }

    fn apply_typed(&mut self, event: Wire<'_>) -> Result<f64> {
        let (_, context, model, accuracy, cost, latency, _, probability) = event;
        self.observe(context, model, Observation::new(accuracy, cost, latency)?, probability)
    }

    fn apply_event(&mut self, event: &Value) -> Result<f64> {
        let shape = || {
            Error::parameter(
                "event",
                event,
                "[seq, context, model, accuracy, cost, latency, reward, probability]",
            )
        };
        let Some([_, context, model, accuracy, cost, latency, _, probability]) = event.as_array().map(Vec::as_slice)
        else {
            return Err(shape());
        };
        let (Some(context), Some(model)) = (context.as_str(), model.as_str()) else {
            return Err(shape());
        };
        let (Some(accuracy), Some(cost), Some(latency)) = (accuracy.as_f64(), cost.as_f64(), latency.as_f64()) else {
            return Err(shape());
        };
        let probability = match probability {
            Value::Null => None,
            p => Some(p.as_f64().ok_or_else(shape)?),
        };
        self.observe(context, model, Observation::new(accuracy, cost, latency)?, probability)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::tests::{automaton, config};

    fn router() -> Router {
        Router::new(config(automaton()), 1).unwrap()
    }

    #[test]
    fn the_written_format_to_the_byte() {
        let events = [
            (1, "c\"", "a", 0.5, 0.25, 1.5, 0.75, None),
            (2, "d", "b", 1.0, 0.0, 0.0, 1.0, Some(0.5)),
        ];
        let bytes = encode("r1", &events).unwrap();
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            r#"{"v":1,"r":"r1","e":[[1,"c\"","a",0.5,0.25,1.5,0.75,null],[2,"d","b",1.0,0.0,0.0,1.0,0.5]]}"#
        );
        assert_eq!(Entry::decode(&bytes).unwrap().replica, "r1");
    }

    #[test]
    fn applies_in_order_skips_copies_and_counts_rejections() {
        let entry = Entry::decode(
            br#"{"v":1,"r":"x","e":[[1,"c","a",1.0,0.0,0.0,1.0,null],[1,"c","a",1.0,0.0,0.0,1.0,null],
            [2,"c","nope",1.0,0.0,0.0,1.0,null],[3,"c","a",2.0,0.0,0.0,1.0,null],["4"],[5,"c"],
            [6,"c","b",1,0,0,1,0.5],[7,"c","b",1.0,0.0,0.0,1.0,true]]}"#,
        )
        .unwrap();
        assert_eq!(entry.replica, "x");
        let mut router = router();
        let done = router.apply_entry(&entry, 0);
        assert_eq!(
            done,
            Applied {
                last: 7,
                applied: 2,
                rejected: 5,
                // ["4"]: rejected, and as its sequence number cannot be read, 4 counts as lost.
                lost: 1,
            }
        );
        assert_eq!(router.feedback_counts("c"), vec![1, 1, 0]);
        let again = router.apply_entry(&entry, done.last);
        assert_eq!(
            (again.applied, again.rejected),
            (0, 1),
            "only the malformed seq is counted"
        );
    }

    #[test]
    fn sequence_gaps_are_counted_as_lost() {
        let entry = Entry::decode(
            br#"{"v":1,"r":"x","e":[[3,"c","a",1.0,0.0,0.0,1.0,null],[4,"c","a",1.0,0.0,0.0,1.0,null],
            [9,"c","nope",1.0,0.0,0.0,1.0,null],[12,"c"]]}"#,
        )
        .unwrap();
        let done = router().apply_entry(&entry, 1);
        assert_eq!(
            (done.last, done.applied, done.rejected, done.lost),
            (12, 2, 2, 1 + 4 + 2)
        );
        let again = router().apply_entry(&entry, 12);
        assert_eq!((again.applied, again.lost), (0, 0), "copies lose nothing");
    }

    #[test]
    fn escaped_names_take_the_slow_path_to_the_same_result() {
        let entry = Entry::decode(br#"{"v":1,"r":"x","e":[[1,"c\"\u00e9","a",1.0,0.0,0.0,1.0,null]]}"#).unwrap();
        let mut router = router();
        assert_eq!(router.apply_entry(&entry, 0).applied, 1);
        assert_eq!(router.feedback_counts("c\"\u{e9}"), vec![1, 0, 0]);
    }

    #[test]
    fn refuses_other_formats() {
        for bytes in [
            &b""[..],
            b"{}",
            br#"{"v":2,"r":"x","e":[]}"#,
            br#"{"v":1,"r":3,"e":[]}"#,
        ] {
            assert!(Entry::decode(bytes).is_err());
        }
    }
}
