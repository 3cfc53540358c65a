//! Snapshots: the whole router as versioned, self-describing bytes, validated on load.
//!
//! Layout (all integers little-endian):
//!
//! | bytes | content |
//! |---|---|
//! | 8 | magic `PICKLLM\0` |
//! | 4 | format version (`FORMAT_VERSION`) |
//! | 8 | payload length |
//! | 4 | CRC-32 (IEEE) of the payload |
//! | n | payload: UTF-8 JSON with the generator's name, the config, the generator state, the next decision id, the router's identity (format 2 on), every context's learner, the counts of contexts let go (format 3 on) and the pending decisions |
//!
//! JSON keeps the snapshot readable by any tool and diffable; the header makes truncation,
//! corruption and a newer format each a clear error before any JSON is parsed. The checksum
//! detects accidents, not attacks. After parsing, every value is validated as strictly as a
//! constructor would, so a restored router is always one that could have been built and run.
//!
//! Taking a snapshot has two steps so that callers holding a lock can keep it short:
//! [`Router::capture`] copies the state (a memory copy, no encoding), and [`Capture::encode`]
//! turns the copy into bytes without the router ([`Capture::write_to`] into a file, as it goes).
//!
//! Format 2 added the router's identity (see [`identity`]); format 1 snapshots still restore,
//! with a fresh identity, as they were written before decisions carried one.
//!
//! Format 3 bounds contexts: the config holds `max_contexts`, contexts are listed in the order
//! they would be let go (learned ones least recently learned first, then unlearned ones oldest
//! first; a context is learned once it has any feedback), the payload counts those `evicted` and
//! `dropped`, and a pending decision whose context was evicted has context `null`. Older formats
//! restore unbounded, as they were written, with their contexts in creation order.

use std::io::{self, BufWriter, Cursor, Seek, SeekFrom, Write};

use serde::{Deserialize, Serialize};

use crate::contexts::{Contexts, NONE, Shared};
use crate::decisions::{Ledger, MAX_NEXT_ID, Pending};
use crate::error::{Error, Result};
use crate::identity;
use crate::learner::{Evidence, Learner};
use crate::rng::{GENERATOR, Rng};
use crate::router::{Config, Router};

const MAGIC: &[u8; 8] = b"PICKLLM\0";
/// The format this build writes, and the newest it reads.
pub const FORMAT_VERSION: u32 = 3;
const HEADER: usize = 8 + 4 + 8 + 4;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    generator: String,
    config: Config,
    rng: Rng,
    next_id: u64,
    /// Absent in format 1.
    #[serde(default)]
    identity: Option<u64>,
    contexts: Vec<ContextRecord>,
    /// Present from format 3 on, absent before (checked, so that a changed version is refused).
    #[serde(default)]
    evicted: Option<u64>,
    #[serde(default)]
    dropped: Option<u64>,
    pending: Vec<PendingRecord>,
    /// Feedbacks learned without a local decision (`Router::observe`); absent when none, so
    /// snapshots of routers that never observed are unchanged.
    #[serde(default)]
    observed: u64,
    /// Absent from snapshots written before learners pooled evidence: restored as none.
    #[serde(default)]
    evidence: Evidence,
    /// Changes detected (contexts restarted by a policy's change detector); absent when none.
    #[serde(default)]
    changes: u64,
}

/// A pending decision in a snapshot: its context is a position in `contexts`, `None` if evicted.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PendingRecord {
    id: u64,
    /// Required, `null` included: an absent field is a damaged snapshot, not an evicted context.
    #[serde(deserialize_with = "Option::deserialize")]
    context: Option<u32>,
    arm: u32,
    probability: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContextRecord {
    name: String,
    learner: Learner,
}

/// A copy of everything a snapshot holds, taken by [`Router::capture`].
pub struct Capture {
    config: Config,
    rng: Rng,
    next_id: u64,
    identity: u64,
    contexts: Shared,
    pending: Vec<Pending>,
    observed: u64,
    evidence: Evidence,
    changes: u64,
}

/// The payload as written: [`Payload`]'s fields, borrowed from a [`Capture`].
#[derive(Serialize)]
struct PayloadOut<'a> {
    generator: &'a str,
    config: &'a Config,
    rng: &'a Rng,
    next_id: u64,
    identity: u64,
    contexts: ContextsOut<'a>,
    evicted: u64,
    dropped: u64,
    pending: &'a [PendingRecord],
    #[serde(skip_serializing_if = "is_zero")]
    observed: u64,
    evidence: &'a Evidence,
    #[serde(skip_serializing_if = "is_zero")]
    changes: u64,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_zero(n: &u64) -> bool {
    *n == 0
}

struct ContextsOut<'a>(&'a Shared);

#[derive(Serialize)]
struct ContextOut<'a> {
    name: &'a str,
    learner: &'a Learner,
}

impl Serialize for ContextsOut<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|(_, name, learner)| ContextOut { name, learner }))
    }
}

impl Router {
    /// The whole router as bytes; [`Router::restore`] gives it back, identical.
    pub fn snapshot(&mut self) -> Result<Vec<u8>> {
        self.capture().encode()
    }

    /// A copy of the state a snapshot holds: reference counts for the contexts (see
    /// [`Contexts::share`]), so it takes milliseconds where encoding takes most of a second.
    #[must_use]
    pub fn capture(&mut self) -> Capture {
        let next_id = self.ledger.next_id();
        Capture {
            config: self.config.clone(),
            rng: self.rng.clone(),
            next_id,
            identity: self.identity,
            contexts: self.contexts.share(),
            pending: self.ledger.pending(),
            observed: self.observed,
            evidence: self.evidence.clone(),
            changes: self.changes,
        }
    }
}

/// The frame of a snapshot with an attachment after it (the prompt mapper, which
/// `python/pickllm/contexts.py` reads back): magic `PICKLLMC`, format 1 (u32), the snapshot's
/// length and the attachment's `meta` length (u64 each, little-endian), then the snapshot, `meta`
/// and the attachment's `rest`.
const ATTACHED_MAGIC: &[u8; 8] = b"PICKLLMC";
const ATTACHED_VERSION: u32 = 1;
const ATTACHED_HEADER: usize = 8 + 4 + 8 + 8;

/// What travels after a snapshot in the same bytes: `(meta, rest)` (see [`ATTACHED_MAGIC`]).
pub type Attachment<'a> = (&'a [u8], &'a [u8]);

impl Capture {
    /// The snapshot bytes of the captured state.
    pub fn encode(self) -> Result<Vec<u8>> {
        self.encode_with(None)
    }

    /// The snapshot bytes, framed with `attachment` after them if there is one: built in one
    /// buffer, so that the caller copies them once (a Python caller, without the interpreter).
    pub fn encode_with(self, attachment: Option<Attachment<'_>>) -> Result<Vec<u8>> {
        let mut out = Cursor::new(Vec::new());
        self.write_with(&mut out, attachment)
            .map_err(|e| Error::snapshot(format!("cannot encode: {e}")))?;
        Ok(out.into_inner())
    }

    /// [`Capture::write_to`], framed with `attachment` after the snapshot if there is one; the
    /// frame's lengths are written last, over a placeholder, like the snapshot's header.
    pub fn write_with<W: Write + Seek>(self, out: &mut W, attachment: Option<Attachment<'_>>) -> io::Result<()> {
        let Some((meta, rest)) = attachment else {
            return self.write_to(out);
        };
        let start = out.stream_position()?;
        out.write_all(&[0; ATTACHED_HEADER])?;
        self.write_to(out)?;
        let inner = out.stream_position()? - start - ATTACHED_HEADER as u64;
        out.write_all(meta)?;
        out.write_all(rest)?;
        out.seek(SeekFrom::Start(start))?;
        out.write_all(ATTACHED_MAGIC)?;
        out.write_all(&ATTACHED_VERSION.to_le_bytes())?;
        out.write_all(&inner.to_le_bytes())?;
        out.write_all(&(meta.len() as u64).to_le_bytes())?;
        out.seek(SeekFrom::End(0))?;
        Ok(())
    }

    /// Write the snapshot of the captured state to `out` as it is encoded, never holding it
    /// whole: saving a large router then allocates (and later frees) no buffer of its size. The
    /// header's length and checksum are known last; they are written over a placeholder.
    pub fn write_to<W: Write + Seek>(self, out: &mut W) -> io::Result<()> {
        // Slot numbers are how the table stores contexts; the snapshot names them by position.
        let mut positions = vec![NONE; self.contexts.slots()];
        for ((slot, _, _), position) in self.contexts.iter().zip(0u32..) {
            if let Some(entry) = positions.get_mut(slot as usize) {
                *entry = position;
            }
        }
        let pending: Vec<PendingRecord> = self
            .pending
            .iter()
            .map(|p| PendingRecord {
                id: p.id,
                context: (self.contexts.generation(p.context) == Some(p.generation))
                    .then(|| positions.get(p.context as usize).copied())
                    .flatten(),
                arm: p.arm,
                probability: p.probability,
            })
            .collect();
        let counts = self.contexts.counts();
        let payload = PayloadOut {
            generator: GENERATOR,
            config: &self.config,
            rng: &self.rng,
            next_id: self.next_id,
            identity: self.identity,
            contexts: ContextsOut(&self.contexts),
            evicted: counts.evicted,
            dropped: counts.dropped,
            pending: &pending,
            observed: self.observed,
            evidence: &self.evidence,
            changes: self.changes,
        };
        let start = out.stream_position()?;
        out.write_all(&[0; HEADER])?;
        let mut body = BufWriter::with_capacity(1 << 16, Checksummed::new(&mut *out));
        serde_json::to_writer(&mut body, &payload)?;
        let body = body.into_inner().map_err(io::IntoInnerError::into_error)?;
        let (length, checksum) = (body.length, body.hasher.finalize());
        out.seek(SeekFrom::Start(start))?;
        out.write_all(MAGIC)?;
        out.write_all(&FORMAT_VERSION.to_le_bytes())?;
        out.write_all(&length.to_le_bytes())?;
        out.write_all(&checksum.to_le_bytes())?;
        out.seek(SeekFrom::End(0))?;
        Ok(())
    }
}

/// A writer that counts and checksums what passes through it (the snapshot's body).
struct Checksummed<W> {
    inner: W,
    hasher: crc32fast::Hasher,
    length: u64,
}

impl<W> Checksummed<W> {
    fn new(inner: W) -> Self {
        Checksummed {
            inner,
            hasher: crc32fast::Hasher::new(),
            length: 0,
        }
    }
}

impl<W: Write> Write for Checksummed<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        let done = buf.get(..written).unwrap_or(buf);
        self.hasher.update(done);
        self.length += done.len() as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl Router {
    /// Rebuild a router from [`Router::snapshot`] bytes, or explain why they are not valid.
    pub fn restore(bytes: &[u8]) -> Result<Router> {
        let (version, payload) = parse(bytes)?;
        if (version >= 3) != (payload.evicted.is_some() && payload.dropped.is_some()) {
            return Err(Error::snapshot(format!(
                "format {version} {} the counts of contexts let go (evicted, dropped)",
                if version >= 3 { "needs" } else { "predates" }
            )));
        }
        if payload.generator != GENERATOR {
            return Err(Error::snapshot(format!(
                "generator {:?} is not {GENERATOR:?}, the only one this version knows",
                payload.generator
            )));
        }
        let mut router = Router::new(payload.config, 0).map_err(|e| Error::snapshot(format!("config: {e}")))?;
        router.rng = payload.rng;
        let models = router.config.models.len();
        if payload.evidence != Evidence::default() {
            payload.evidence.validate(models)?;
            router.evidence = payload.evidence;
        }
        for record in &payload.contexts {
            record
                .learner
                .validate(&router.config.policy, models)
                .map_err(|e| in_context(&record.name, e))?;
        }
        let mut contexts = Contexts::restore(
            router.config.max_contexts,
            payload.contexts.into_iter().map(|r| (r.name, r.learner)),
        )
        .map_err(Error::snapshot)?;
        contexts.set_let_go(payload.evicted.unwrap_or(0), payload.dropped.unwrap_or(0));
        if payload.next_id > MAX_NEXT_ID {
            return Err(Error::snapshot(format!(
                "next_id {} is beyond any router's reach (at most 2^63)",
                payload.next_id
            )));
        }
        // Each applied feedback redeemed one decision or was observed (`Router::observe`), and
        // each pending decision is another one:
        // together they cannot outnumber the decisions issued. This also keeps every count far
        // from overflowing when it is incremented.
        let mut redeemed: u64 = 0;
        for (_, learner, _) in contexts.iter() {
            for &count in &learner.feedbacks {
                redeemed = redeemed.saturating_add(count);
            }
        }
        let accounted = redeemed.saturating_add(payload.pending.len() as u64);
        if accounted > payload.next_id.saturating_add(payload.observed) {
            return Err(Error::snapshot(format!(
                "{redeemed} applied feedbacks and {} pending decisions, more than the {} decisions issued",
                payload.pending.len(),
                payload.next_id
            )));
        }
        let mut pending = Vec::with_capacity(payload.pending.len());
        for p in &payload.pending {
            if p.context.is_some_and(|c| c as usize >= contexts.len()) || p.arm as usize >= models {
                return Err(Error::snapshot(format!(
                    "pending decision {} refers to a missing context or model",
                    p.id
                )));
            }
            // Context `i` took slot `i`; an evicted one gets no slot, so its feedback re-creates
            // it by name.
            let context = p.context.unwrap_or(NONE);
            pending.push(Pending {
                id: p.id,
                context,
                generation: contexts.generation(context).unwrap_or(0),
                arm: p.arm,
                probability: p.probability,
            });
        }
        router.contexts = contexts;
        router.identity = payload.identity.unwrap_or_else(identity::fresh);
        router.observed = payload.observed;
        router.changes = payload.changes;
        router.ledger = Ledger::from_parts(router.config.max_pending, payload.next_id, &pending)?;
        Ok(router)
    }
}

fn in_context(name: &str, error: Error) -> Error {
    match error {
        Error::Snapshot(message) => Error::snapshot(format!("context {name:?}: {message}")),
        other => other,
    }
}

fn le_u32(bytes: &[u8]) -> u32 {
    let mut word = [0; 4];
    word.copy_from_slice(bytes);
    u32::from_le_bytes(word)
}

/// The format version and the payload.
fn parse(bytes: &[u8]) -> Result<(u32, Payload)> {
    if bytes.len() < HEADER {
        if bytes.is_empty() {
            return Err(Error::snapshot("empty input"));
        }
        return Err(Error::snapshot(format!(
            "truncated: {} bytes, shorter than the {HEADER}-byte header",
            bytes.len()
        )));
    }
    let (header, body) = bytes.split_at(HEADER);
    if &header[..8] != MAGIC {
        return Err(Error::snapshot("not a pickllm snapshot (bad magic bytes)"));
    }
    let version = le_u32(&header[8..12]);
    if version > FORMAT_VERSION {
        return Err(Error::snapshot(format!(
            "format version {version} was written by a newer pickllm; this version reads up to {FORMAT_VERSION}"
        )));
    }
    if version == 0 {
        return Err(Error::snapshot("format version 0 does not exist"));
    }
    let mut length = [0; 8];
    length.copy_from_slice(&header[12..20]);
    let length = u64::from_le_bytes(length);
    if length != body.len() as u64 {
        return Err(Error::snapshot(format!(
            "{}: the header announces {length} payload bytes, found {}",
            if (body.len() as u64) < length {
                "truncated"
            } else {
                "trailing bytes"
            },
            body.len()
        )));
    }
    if crc32fast::hash(body) != le_u32(&header[20..24]) {
        return Err(Error::snapshot(
            "checksum mismatch: the snapshot was altered or corrupted",
        ));
    }
    let payload = serde_json::from_slice(body).map_err(|e| Error::snapshot(format!("payload: {e}")))?;
    Ok((version, payload))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::automaton::AutomatonConfig;
    use crate::learner::Policy;
    use crate::q_learning::{QConfig, StepSchedule, StepSize};
    use crate::reward::{Observation, Reward};
    use crate::subset::Subset;
    use proptest::prelude::*;

    fn trained(policy: Policy) -> Router {
        let config = Config {
            models: vec!["a".into(), "b".into(), "c".into()],
            policy,
            reward: Reward::default(),
            prior: None,
            max_pending: 16,
            default_context: "default".into(),
            max_contexts: None,
        };
        let mut router = Router::new(config, 9).unwrap();
        for i in 0..200 {
            let ctx = ["x", "y", "z"][i % 3];
            let d = router.select(Some(ctx), Subset::ALL).unwrap();
            if i % 4 != 0 {
                let model = router.config.models[d.arm].clone();
                let obs = Observation::new(if d.arm == i % 3 { 1.0 } else { 0.3 }, 0.001, 0.5).unwrap();
                router.feedback(d.id, &model, ctx, obs).unwrap();
            }
        }
        router
    }

    fn policies() -> Vec<Policy> {
        vec![
            Policy::LearningAutomaton(AutomatonConfig {
                learning_rate: 0.05,
                threshold: 0.99,
                lock: true,
            }),
            Policy::QLearning(QConfig {
                learning_rate: StepSize::Schedule(StepSchedule::SampleAverage),
                epsilon: 0.2,
                epsilon_decay: 0.99,
                epsilon_min: 0.02,
                patience: 20,
                share: 0.0,
                lock: false,
            }),
        ]
    }

    #[test]
    fn round_trip_is_identical_and_continues_identically() {
        for policy in policies() {
            let mut original = trained(policy);
            let mut restored = Router::restore(&original.snapshot().unwrap()).unwrap();
            assert_eq!(restored, original);
            assert!(restored.check_issuer(original.identity(), 199).is_ok());
            for _ in 0..50 {
                let a = original.select(Some("x"), Subset::ALL).unwrap();
                let b = restored.select(Some("x"), Subset::ALL).unwrap();
                // Slot numbers may differ: how each table stores its contexts.
                assert_eq!((a.id, a.arm, a.probability), (b.id, b.arm, b.probability));
            }
        }
    }

    #[test]
    fn every_corruption_is_a_clear_error() {
        let bytes = trained(policies().remove(0)).snapshot().unwrap();
        let message = |b: &[u8]| Router::restore(b).unwrap_err().to_string();
        assert!(message(&[]).contains("empty"));
        assert!(message(&bytes[..10]).contains("truncated"));
        assert!(message(&bytes[..bytes.len() - 1]).contains("truncated"));
        let mut extra = bytes.clone();
        extra.push(b' ');
        assert!(message(&extra).contains("trailing"));
        let mut flipped = bytes.clone();
        let last = flipped.len() - 2;
        flipped[last] ^= 1;
        assert!(message(&flipped).contains("checksum"));
        let mut newer = bytes.clone();
        newer[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
        assert!(message(&newer).contains("newer"));
        let mut magic = bytes;
        magic[0] = b'X';
        assert!(message(&magic).contains("magic"));
    }

    #[test]
    fn semantically_invalid_payloads_are_rejected_even_with_a_valid_checksum() {
        let bytes = trained(policies().remove(0)).snapshot().unwrap();
        let json = std::str::from_utf8(&bytes[HEADER..]).unwrap();
        let reseal = |json: &str| {
            let mut out = bytes[..12].to_vec();
            out.extend_from_slice(&(json.len() as u64).to_le_bytes());
            out.extend_from_slice(&crc32fast::hash(json.as_bytes()).to_le_bytes());
            out.extend_from_slice(json.as_bytes());
            out
        };
        assert!(Router::restore(&reseal(json)).is_ok());
        for (from, to) in [
            ("\"learning_rate\":0.05", "\"learning_rate\":5.0"),
            ("\"generator\":\"xoshiro256++\"", "\"generator\":\"mt19937\""),
            ("\"max_pending\":16", "\"max_pending\":0"),
            ("\"probabilities\":[", "\"probabilities\":[0.5,"),
            ("\"next_id\":200", "\"next_id\":2"),
            ("\"rng\":[", "\"rng\":[0,0,0,0],\"x\":["),
        ] {
            assert!(json.contains(from), "fixture lacks {from}");
            let altered = json.replacen(from, to, 1);
            assert!(Router::restore(&reseal(&altered)).is_err(), "accepted {to}");
        }
    }

    #[test]
    fn states_no_run_could_reach_are_rejected() {
        let reseal = |doc: &serde_json::Value| {
            let json = serde_json::to_vec(doc).unwrap();
            let mut out = MAGIC.to_vec();
            out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
            out.extend_from_slice(&(json.len() as u64).to_le_bytes());
            out.extend_from_slice(&crc32fast::hash(&json).to_le_bytes());
            out.extend_from_slice(&json);
            out
        };
        for policy in policies() {
            let bytes = trained(policy).snapshot().unwrap();
            let doc: serde_json::Value = serde_json::from_slice(&bytes[HEADER..]).unwrap();
            assert!(Router::restore(&reseal(&doc)).is_ok());
            let q = doc["config"]["policy"]["kind"] == "q_learning";
            let edits: Vec<(&str, serde_json::Value, &str)> = vec![
                // More feedbacks than decisions issued (and a count that would overflow).
                ("/contexts/0/learner/feedbacks/0", u64::MAX.into(), "decisions issued"),
                ("/next_id", (1u64 << 63).saturating_add(1).into(), "beyond"),
                // Locked onto a model the state has not converged to.
                ("/contexts/0/learner/locked", 2.into(), "locked"),
                if q {
                    ("/contexts/0/learner/state/values/0", 5.0.into(), "[0, 1]")
                } else {
                    ("/contexts/0/learner/locked", 7.into(), "out of range")
                },
            ];
            for (pointer, value, words) in edits {
                let mut altered = doc.clone();
                *altered.pointer_mut(pointer).unwrap() = value;
                let error = Router::restore(&reseal(&altered)).unwrap_err().to_string();
                assert!(error.contains(words), "{pointer}: {error}");
            }
        }
    }

    #[test]
    fn a_capture_encodes_its_moment_whatever_the_router_learns_after() {
        let mut router = trained(policies().remove(0));
        for i in 0..3000 {
            router.select(Some(&format!("tenant-{i}")), Subset::ALL).unwrap();
        }
        let at_capture = router.clone();
        let capture = router.capture();
        // Learn in every chunk, add contexts: the capture must not see any of it.
        for i in (0..3000).step_by(100) {
            let name = format!("tenant-{i}");
            let d = router.select(Some(&name), Subset::ALL).unwrap();
            let model = router.config.models[d.arm].clone();
            router
                .feedback(d.id, &model, &name, Observation::new(1.0, 0.0, 0.0).unwrap())
                .unwrap();
        }
        router.select(Some("new"), Subset::ALL).unwrap();
        let restored = Router::restore(&capture.encode().unwrap()).unwrap();
        assert_eq!(restored, at_capture);
        assert_ne!(restored, router);
    }

    #[test]
    fn written_as_encoded_wherever_the_writer_starts() {
        let mut router = trained(policies().remove(0));
        let mut out = Cursor::new(b"before".to_vec());
        out.seek(SeekFrom::End(0)).unwrap();
        router.capture().write_to(&mut out).unwrap();
        let written = out.into_inner();
        assert_eq!(written[..6], *b"before");
        assert_eq!(written[6..], router.snapshot().unwrap()[..]);
    }

    #[test]
    fn an_attachment_is_framed_after_the_snapshot_alike_in_memory_and_in_a_file() {
        let mut router = trained(policies().remove(0));
        let plain = router.snapshot().unwrap();
        let framed = router.capture().encode_with(Some((b"meta", b"rest"))).unwrap();
        assert_eq!(framed[..8], *ATTACHED_MAGIC);
        assert_eq!(le_u32(&framed[8..12]), ATTACHED_VERSION);
        assert_eq!(framed[12..20], (plain.len() as u64).to_le_bytes());
        assert_eq!(framed[20..28], 4u64.to_le_bytes());
        assert_eq!(framed[ATTACHED_HEADER..ATTACHED_HEADER + plain.len()], plain[..]);
        assert_eq!(framed[ATTACHED_HEADER + plain.len()..], *b"metarest");
        let mut file = Cursor::new(Vec::new());
        router
            .capture()
            .write_with(&mut file, Some((b"meta", b"rest")))
            .unwrap();
        assert_eq!(file.into_inner(), framed);
        assert_eq!(router.capture().encode_with(None).unwrap(), plain);
    }

    #[test]
    fn format_1_snapshots_restore_with_a_fresh_identity() {
        let mut original = trained(policies().remove(0));
        let bytes = original.snapshot().unwrap();
        let mut doc: serde_json::Value = serde_json::from_slice(&bytes[HEADER..]).unwrap();
        for field in ["identity", "evicted", "dropped"] {
            doc.as_object_mut().unwrap().remove(field);
        }
        let json = serde_json::to_vec(&doc).unwrap();
        let mut old = MAGIC.to_vec();
        old.extend_from_slice(&1u32.to_le_bytes());
        old.extend_from_slice(&(json.len() as u64).to_le_bytes());
        old.extend_from_slice(&crc32fast::hash(&json).to_le_bytes());
        old.extend_from_slice(&json);
        let mut restored = Router::restore(&old).unwrap();
        assert_ne!(restored.identity(), original.identity());
        restored.identity = original.identity;
        assert_eq!(restored, original);
    }

    #[test]
    fn format_2_snapshots_restore_unbounded() {
        let mut original = trained(policies().remove(0));
        original.select(Some("only selected"), Subset::ALL).unwrap();
        let bytes = original.snapshot().unwrap();
        let mut doc: serde_json::Value = serde_json::from_slice(&bytes[HEADER..]).unwrap();
        for field in ["evicted", "dropped"] {
            doc.as_object_mut().unwrap().remove(field);
        }
        doc["config"].as_object_mut().unwrap().remove("max_contexts");
        // Format 2 listed contexts in creation order, the unlearned one first here.
        let n = doc["contexts"].as_array().unwrap().len() as u64;
        doc["contexts"].as_array_mut().unwrap().rotate_right(1);
        for p in doc["pending"].as_array_mut().unwrap() {
            p["context"] = (p["context"].as_u64().unwrap() + 1).rem_euclid(n).into();
        }
        let json = serde_json::to_vec(&doc).unwrap();
        let mut old = MAGIC.to_vec();
        old.extend_from_slice(&2u32.to_le_bytes());
        old.extend_from_slice(&(json.len() as u64).to_le_bytes());
        old.extend_from_slice(&crc32fast::hash(&json).to_le_bytes());
        old.extend_from_slice(&json);
        let restored = Router::restore(&old).unwrap();
        assert_eq!(restored.config().max_contexts, None);
        assert_eq!(restored.contexts(), original.contexts());
        assert_eq!(restored.contexts().last(), Some(&"only selected"));
        assert_eq!(restored, original);
    }

    #[test]
    fn snapshots_written_before_floors_and_detectors_restore_without_them() {
        use crate::changes::ChangeDetector;
        use crate::learners::thompson::ThompsonConfig;
        use crate::learners::ucb::{Bound, UcbConfig};
        let ucb = |floor: f64, detect_changes: Option<ChangeDetector>| {
            Policy::Ucb(UcbConfig {
                exploration: 0.5,
                discount: 1.0,
                bound: Bound::Tuned,
                share: 5.0,
                floor,
                detect_changes,
                lock: false,
            })
        };
        let thompson = Policy::ThompsonSampling(ThompsonConfig {
            discount: 1.0,
            prior: [1.0, 1.0],
            threshold: 0.99,
            share: 2.0,
            floor: 0.0,
            detect_changes: None,
            lock: false,
        });
        for policy in [ucb(0.0, None), thompson] {
            let mut original = trained(policy);
            let bytes = original.snapshot().unwrap();
            let mut doc: serde_json::Value = serde_json::from_slice(&bytes[HEADER..]).unwrap();
            let config = doc["config"]["policy"].as_object_mut().unwrap();
            assert!(config.remove("floor").is_some() && config.remove("detect_changes").is_some());
            let json = serde_json::to_vec(&doc).unwrap();
            let mut old = bytes[..12].to_vec();
            old.extend_from_slice(&(json.len() as u64).to_le_bytes());
            old.extend_from_slice(&crc32fast::hash(&json).to_le_bytes());
            old.extend_from_slice(&json);
            assert_eq!(Router::restore(&old).unwrap(), original);
        }
        // A detecting router's snapshot keeps its histories and count.
        let mut detecting = trained(ucb(0.01, Some(ChangeDetector { delta: 0.01, stride: 1 })));
        detecting.changes = 3;
        let restored = Router::restore(&detecting.snapshot().unwrap()).unwrap();
        assert_eq!(restored.changes(), 3);
        assert_eq!(restored, detecting);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = Router::restore(&bytes);
        }

        #[test]
        fn any_single_byte_change_is_rejected_or_harmless(index in 0usize..4096, value in any::<u8>()) {
            let bytes = trained(policies().remove(1)).snapshot().unwrap();
            let mut altered = bytes.clone();
            let i = index % altered.len();
            altered[i] = value;
            match Router::restore(&altered) {
                Ok(router) => prop_assert_eq!(altered, bytes, "accepted a changed snapshot: {:?}", router.config),
                Err(_) => prop_assert_ne!(altered, bytes),
            }
        }
    }
}
