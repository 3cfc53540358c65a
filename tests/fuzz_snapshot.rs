//! Structured fuzzing of the snapshot decoder, `Router::restore`, on the stable toolchain.
//!
//! Every input is built from valid snapshots of differently configured routers by one of these
//! mutations: random bytes; bit flips and byte replacements; truncation (raw, and of the payload
//! with the header resealed, at every length); splices of two snapshots (raw, and of two payloads,
//! resealed); byte edits inside the JSON payload, resealed; header edits (version, length, CRC);
//! and JSON-level edits, resealed with the right length and CRC so that the validation behind the
//! checksum is what gets exercised: values of the wrong type, out of range, huge, negative, NaN-
//! like strings and numbers JSON cannot hold, missing and unknown fields, duplicated keys,
//! duplicated or renamed contexts, pending decisions outside the window or pointing at missing
//! contexts and models, values copied between fields and between snapshots.
//!
//! For each input, `Router::restore` must not panic, and must either return an error with a
//! message, or a router that (1) snapshots back to bytes that restore to an equal router and
//! re-snapshot to the same bytes, (2) has a distribution on the simplex and one feedback count per
//! model in every context, at most `max_pending` pending decisions, and (3) keeps working: each
//! restored pending decision takes its feedback exactly once, and new selections in every context
//! take feedback that adds exactly one to the chosen model's count.
//!
//! * `cargo test --test fuzz_snapshot` runs the quick variant (CI; a few seconds).
//! * `cargo test --release --test fuzz_snapshot -- --ignored --nocapture` runs one million inputs
//!   and prints the count and the rate. `FUZZ_INPUTS=N` and `FUZZ_SEED=S` change the count and
//!   the seed (each seed gives one fixed sequence of inputs).
//!
//! A failure lists each kind of problem found with its first input (hex) and writes every such
//! input to `target/fuzz-findings/`.

// A test crate: helpers may unwrap and panic like tests do (clippy.toml allows it only inside
// #[test] functions); a failing unwrap is a failing test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Once;
use std::time::Instant;

use _core::automaton::AutomatonConfig;
use _core::error::Error;
use _core::learner::Policy;
use _core::q_learning::{QConfig, StepSchedule, StepSize};
use _core::reward::{Observation, Reward, RewardForm};
use _core::router::{Config, Router};
use _core::subset::Subset;
use serde_json::{Map, Value};

const MAGIC: &[u8; 8] = b"PICKLLM\0";
const HEADER: usize = 24;

// ==================== A seeded generator (SplitMix64) ====================

struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform-enough in `0..n` (n > 0; the modulo bias is irrelevant here).
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n.max(1) as u64).unwrap_or(0)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn byte(&mut self) -> u8 {
        self.next().to_le_bytes()[0]
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

// ==================== Valid snapshots to start from ====================

fn automaton(learning_rate: f64, threshold: f64, lock: bool) -> Policy {
    Policy::LearningAutomaton(AutomatonConfig {
        learning_rate,
        threshold,
        lock,
    })
}

fn q_learning(learning_rate: StepSize, epsilon_decay: f64, lock: bool) -> Policy {
    Policy::QLearning(QConfig {
        learning_rate,
        epsilon: 0.3,
        epsilon_decay,
        epsilon_min: 0.05,
        patience: 5,
        share: 0.0,
        lock,
    })
}

fn config(models: &[&str], policy: Policy, reward: Reward, prior: Option<Vec<f64>>, max_pending: usize) -> Config {
    Config {
        models: models.iter().map(|m| (*m).to_owned()).collect(),
        policy,
        reward,
        prior,
        max_pending,
        default_context: "default".into(),
        max_contexts: None,
    }
}

/// A router driven through `rounds` selections in `contexts`, with feedback for most of them
/// (the model `i % models` is the good one), so that snapshots hold learned state, locks,
/// pending decisions and expired ones.
fn trained(config: Config, seed: u64, contexts: &[&str], rounds: usize) -> Router {
    let mut router = Router::new(config, seed).unwrap();
    let models = router.config().models.clone();
    for i in 0..rounds {
        let context = contexts[i % contexts.len()];
        let d = router.select(Some(context), Subset::ALL).unwrap();
        if i % 5 != 0 {
            let accuracy = if d.arm == i % models.len() { 1.0 } else { 0.2 };
            let observation = Observation::new(accuracy, 0.001 * (i % 7) as f64, 0.3).unwrap();
            router.feedback(d.id, &models[d.arm], context, observation).unwrap();
        }
    }
    router
}

fn seeds() -> Vec<Vec<u8>> {
    let paper = Reward::new(
        1.0,
        0.2,
        0.5,
        0.01,
        10.0,
        RewardForm::Paper {
            time_scaling: 1.0,
            latency_floor_ms: 10.0,
            max_value: None,
        },
    )
    .unwrap();
    let mut routers = [
        // Automaton that locks, a small ring with pending and expired decisions.
        trained(
            config(&["a", "b", "c"], automaton(0.2, 0.9, true), Reward::default(), None, 16),
            9,
            &["x", "y", "z"],
            200,
        ),
        // Q-learning with sample averages, no lock, a prior, the paper's reward form.
        trained(
            config(
                &["gpt-4o", "mixtral", "llama", "mistral"],
                q_learning(StepSize::Schedule(StepSchedule::SampleAverage), 0.95, false),
                paper,
                Some(vec![0.5, 0.4, 0.3, 0.2]),
                64,
            ),
            3,
            &["finance", "law", "", "ü \"quoted\" \\ name"],
            300,
        ),
        // Q-learning with a constant step that locks; a ring larger than the decisions issued.
        trained(
            config(
                &["m0", "m1"],
                q_learning(StepSize::Constant(0.3), 1.0, true),
                Reward::default(),
                None,
                1000,
            ),
            11,
            &["default", "t"],
            80,
        ),
        // One model, never used.
        Router::new(
            config(&["only"], automaton(0.1, 1.0, true), Reward::default(), None, 1),
            0,
        )
        .unwrap(),
        // An automaton with a prior, max_pending 1, many contexts without feedback.
        trained(
            config(
                &["p", "q", "r", "s", "t"],
                automaton(0.05, 0.99, false),
                Reward::default(),
                Some(vec![5.0, 1.0, 1.0, 1.0, 2.0]),
                1,
            ),
            77,
            &["c0", "c1", "c2", "c3", "c4", "c5", "c6"],
            21,
        ),
    ];
    routers.iter_mut().map(|r| r.snapshot().unwrap()).collect()
}

// ==================== Sealing and splitting ====================

fn seal(payload: &[u8]) -> Vec<u8> {
    seal_with(
        _core::snapshot::FORMAT_VERSION,
        payload.len() as u64,
        crc32fast::hash(payload),
        payload,
    )
}

fn seal_with(version: u32, length: u64, crc: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&length.to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

fn payload(snapshot: &[u8]) -> &[u8] {
    snapshot.get(HEADER..).unwrap_or_default()
}

// ==================== JSON-level mutations ====================

/// JSON number tokens and others that `serde_json::Value` cannot hold (beyond u64 and i64,
/// beyond f64, non-JSON spellings of NaN and infinity), spliced in as raw text.
const RAW_TOKENS: &[&str] = &[
    "18446744073709551616",
    "18446744073709551615",
    "-9223372036854775809",
    "340282366920938463463374607431768211456",
    "9007199254740993",
    "4294967296",
    "4294967295",
    "1e400",
    "-1e400",
    "1e-400",
    "-0",
    "-0.0",
    "1.0",
    "0.0",
    "1e0",
    "NaN",
    "Infinity",
    "-Infinity",
    "nan",
    "01",
    "+1",
    ".5",
    "1.",
    "0x10",
    "\"\\ud800\"",
    "\"\\u0000\"",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
];

const RAW_MARK: &str = "\u{1}raw:";

fn interesting(g: &mut Gen) -> Value {
    match g.below(34) {
        0 => Value::Null,
        1 => Value::Bool(true),
        2 => Value::Bool(false),
        3 => Value::from(0),
        4 => Value::from(-1),
        5 => Value::from(1),
        6 => Value::from(2),
        7 => Value::from(0.5),
        8 => Value::from(1.000_000_1),
        9 => Value::from(0.999_999_9),
        10 => Value::from(1e-300),
        11 => Value::from(f64::MAX),
        12 => Value::from(-f64::MAX),
        13 => Value::from(u64::MAX),
        14 => Value::from(u64::MAX - 1),
        15 => Value::from(i64::MIN),
        16 => Value::from(u64::from(u32::MAX)),
        17 => Value::from(1u64 << 53),
        18 => Value::from(1_000_000_000_000u64),
        19 => Value::from(""),
        20 => Value::from("NaN"),
        21 => Value::from("inf"),
        22 => Value::from("-Infinity"),
        23 => Value::from("sample_average"),
        24 => Value::from("learning_automaton"),
        25 => Value::from("q_learning"),
        26 => Value::from("linear"),
        27 => Value::from("x".repeat(g.below(3000))),
        28 => Value::Array(vec![]),
        29 => Value::Object(Map::new()),
        30 => Value::Array(vec![Value::from(0); g.below(6)]),
        31 => Value::Array(vec![Value::from(0.25); g.below(6)]),
        32 => Value::from(f64::from_bits(g.next()).clamp(-1e300, 1e300)),
        _ => Value::from(format!("{RAW_MARK}{}", g.below(RAW_TOKENS.len()))),
    }
}

#[derive(Clone, Debug)]
enum Seg {
    Key(String),
    Index(usize),
}

fn paths(value: &Value, prefix: &mut Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
    out.push(prefix.clone());
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                prefix.push(Seg::Key(key.clone()));
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                prefix.push(Seg::Index(i));
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn at<'a>(value: &'a mut Value, path: &[Seg]) -> Option<&'a mut Value> {
    let mut node = value;
    for seg in path {
        node = match (seg, node) {
            (Seg::Key(key), Value::Object(map)) => map.get_mut(key)?,
            (Seg::Index(i), Value::Array(items)) => items.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(node)
}

fn get<'a>(value: &'a Value, path: &[Seg]) -> Option<&'a Value> {
    let mut node = value;
    for seg in path {
        node = match (seg, node) {
            (Seg::Key(key), Value::Object(map)) => map.get(key)?,
            (Seg::Index(i), Value::Array(items)) => items.get(*i)?,
            _ => return None,
        };
    }
    Some(node)
}

fn count(value: &Value, key: &str) -> u64 {
    value.get(key).and_then(Value::as_array).map_or(0, |a| a.len() as u64)
}

fn u64_at(value: &Value, key: &str) -> u64 {
    value.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// One generic edit at a random node.
fn generic_edit(g: &mut Gen, doc: &mut Value, donor: &Value) {
    let mut all = Vec::new();
    paths(doc, &mut Vec::new(), &mut all);
    let path = g.pick(&all).clone();
    let other = {
        let mut donors = Vec::new();
        paths(if g.chance(50) { doc } else { donor }, &mut Vec::new(), &mut donors);
        let from = g.pick(&donors).clone();
        get(if g.chance(50) { doc } else { donor }, &from).cloned()
    };
    let same_in_donor = get(donor, &path).cloned();
    let choice = g.below(8);
    let Some(node) = at(doc, &path) else { return };
    match (choice, node) {
        (0 | 1, node) => *node = interesting(g),
        (2, node) => {
            if let Some(other) = other {
                *node = other;
            }
        }
        (3, node) => {
            if let Some(same) = same_in_donor {
                *node = same;
            }
        }
        (4 | 5, node @ Value::Number(_)) => {
            let (x, u) = (node.as_f64().unwrap_or(0.0), node.as_u64());
            let tweaked = match g.below(8) {
                0 => x + 1.0,
                1 => x - 1.0,
                2 => x * 2.0,
                3 => -x,
                4 => x + 1e-12,
                5 => x - 1e-9,
                6 => x * 1e6,
                _ => x / 3.0,
            };
            *node = match (u, g.below(3)) {
                (Some(u), 0) => Value::from(u.wrapping_add(1)),
                (Some(u), 1) => Value::from(u.wrapping_sub(1)),
                _ => Value::from(tweaked),
            };
        }
        (4 | 5, Value::Array(items)) if !items.is_empty() => {
            let i = g.below(items.len());
            match g.below(6) {
                0 => {
                    items.remove(i);
                }
                1 => {
                    let copy = items[i].clone();
                    items.insert(i, copy);
                }
                2 => {
                    let j = g.below(items.len());
                    items.swap(i, j);
                }
                3 => items.truncate(i),
                4 => items.push(interesting(g)),
                _ => items.reverse(),
            }
        }
        (4 | 5, Value::Object(map)) if !map.is_empty() => {
            let keys: Vec<String> = map.keys().cloned().collect();
            let key = g.pick(&keys).clone();
            match g.below(3) {
                0 => {
                    map.remove(&key);
                }
                1 => {
                    map.insert(format!("{key}_extra"), interesting(g));
                }
                _ => {
                    if let Some(v) = map.remove(&key) {
                        let to = g.pick(&keys).clone();
                        map.insert(to, v);
                    }
                }
            }
        }
        (4 | 5, Value::String(s)) => {
            *s = match g.below(4) {
                0 => String::new(),
                1 => format!("{s}{s}"),
                2 => s.chars().rev().collect(),
                _ => "\u{fffd}\u{0}é".to_owned(),
            };
        }
        (6, Value::Object(map)) => {
            map.insert("unknown_field".into(), interesting(g));
        }
        (_, node) => *node = interesting(g),
    }
}

/// One edit aimed at what only the semantic validation can catch.
fn semantic_edit(g: &mut Gen, doc: &mut Value) {
    let contexts = count(doc, "contexts");
    let pending = count(doc, "pending");
    let models = doc
        .pointer("/config/models")
        .and_then(Value::as_array)
        .map_or(0, Vec::len) as u64;
    let next_id = u64_at(doc, "next_id");
    let max_pending = doc.pointer("/config/max_pending").and_then(Value::as_u64).unwrap_or(1);
    let c = g.below(contexts.max(1) as usize);
    let p = g.below(pending.max(1) as usize);
    let m = g.below(models.max(1) as usize);
    let set = |doc: &mut Value, pointer: &str, value: Value| {
        if let Some(node) = doc.pointer_mut(pointer) {
            *node = value;
        }
    };
    match g.below(24) {
        0 => {
            // A context twice.
            if let Some(list) = doc.get_mut("contexts").and_then(Value::as_array_mut)
                && let Some(copy) = list.get(c).cloned()
            {
                list.push(copy);
            }
        }
        1 => {
            // Two contexts with one name.
            let name = doc.pointer(&format!("/contexts/{c}/name")).cloned();
            let other = g.below(contexts.max(1) as usize);
            if let Some(name) = name {
                set(doc, &format!("/contexts/{other}/name"), name);
            }
        }
        2 => set(
            doc,
            &format!("/pending/{p}/context"),
            Value::from(contexts.wrapping_add(g.below(2) as u64)),
        ),
        3 => set(
            doc,
            &format!("/pending/{p}/arm"),
            Value::from(models.wrapping_add(g.below(2) as u64)),
        ),
        4 => set(
            doc,
            &format!("/pending/{p}/id"),
            Value::from(next_id.wrapping_add(g.below(2) as u64)),
        ),
        5 => set(
            doc,
            &format!("/pending/{p}/id"),
            Value::from(next_id.saturating_sub(max_pending.saturating_add(g.below(2) as u64))),
        ),
        6 => {
            if let Some(list) = doc.get_mut("pending").and_then(Value::as_array_mut)
                && let Some(copy) = list.get(p).cloned()
            {
                list.push(copy);
            }
        }
        7 => set(doc, &format!("/pending/{p}/probability"), interesting(g)),
        8 => set(
            doc,
            "/next_id",
            Value::from(*g.pick(&[0, 1, next_id / 2, u64::MAX, u64::MAX - 1])),
        ),
        9 => set(
            doc,
            "/config/max_pending",
            Value::from(*g.pick(&[0, 1, 2, pending, pending.saturating_sub(1), 1 << 40, u64::MAX])),
        ),
        10 => set(doc, "/rng", Value::from(vec![0u64; 4])),
        11 => set(doc, &format!("/rng/{}", g.below(4)), interesting(g)),
        12 => set(
            doc,
            &format!("/contexts/{c}/learner/locked"),
            Value::from(models.wrapping_add(g.below(2) as u64)),
        ),
        13 => set(
            doc,
            &format!("/contexts/{c}/learner/feedbacks/{m}"),
            Value::from(u64::MAX),
        ),
        14 => {
            if let Some(list) = doc
                .pointer_mut(&format!("/contexts/{c}/learner/feedbacks"))
                .and_then(Value::as_array_mut)
            {
                list.push(Value::from(0));
            }
        }
        15 => {
            // Swap the policy kind, keeping the learners' states.
            let kind = doc
                .pointer("/config/policy/kind")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let to = if kind.as_deref() == Some("q_learning") {
                "learning_automaton"
            } else {
                "q_learning"
            };
            set(doc, "/config/policy/kind", Value::from(to));
        }
        16 => {
            // A state of the other kind.
            let state = if g.chance(50) {
                serde_json::json!({"kind": "learning_automaton", "probabilities": vec![1.0 / models.max(1) as f64; models as usize]})
            } else {
                serde_json::json!({"kind": "q_learning", "values": vec![0.5; models as usize], "epsilon": 0.1, "greedy": null, "streak": 0})
            };
            set(doc, &format!("/contexts/{c}/learner/state"), state);
        }
        17 => {
            // One model more or fewer than the learners hold.
            if let Some(list) = doc.pointer_mut("/config/models").and_then(Value::as_array_mut) {
                if g.chance(50) {
                    list.push(Value::from("extra-model"));
                } else {
                    list.pop();
                }
            }
        }
        18 => {
            if let Some(list) = doc.pointer_mut("/config/models").and_then(Value::as_array_mut)
                && let Some(first) = list.first().cloned()
            {
                list.push(first);
            }
        }
        19 => set(doc, "/config/prior", Value::from(vec![1.0; (models as usize + 1) % 7])),
        20 => set(
            doc,
            &format!("/contexts/{c}/learner/state/probabilities/{m}"),
            interesting(g),
        ),
        21 => set(doc, &format!("/contexts/{c}/learner/state/values/{m}"), interesting(g)),
        22 => set(doc, &format!("/contexts/{c}/learner/state/epsilon"), interesting(g)),
        _ => set(
            doc,
            "/generator",
            Value::from(*g.pick(&["xoshiro256**", "", "XOSHIRO256++"])),
        ),
    }
}

/// Serialize with raw tokens substituted, and sometimes a duplicated key spliced in as text.
fn render(g: &mut Gen, doc: &Value) -> Vec<u8> {
    let mut text = serde_json::to_string(doc).unwrap_or_default();
    if text.contains("\\u0001raw:") {
        for (i, token) in RAW_TOKENS.iter().enumerate() {
            text = text.replace(&format!("\"\\u0001raw:{i}\""), token);
        }
    }
    if g.chance(5) {
        let key = *g.pick(&[
            "\"next_id\":",
            "\"pending\":",
            "\"models\":",
            "\"locked\":",
            "\"name\":",
        ]);
        if let Some(at) = text.find(key) {
            text.insert_str(at, &format!("{key}0,"));
        }
    }
    text.into_bytes()
}

// ==================== Byte-level mutations ====================

const INTERESTING_BYTES: &[u8] = b"\x00\xff\x7f\x80\"{}[],:-+.eE0123456789\\ntfu";

fn flip_bits(g: &mut Gen, bytes: &mut [u8], from: usize) {
    if bytes.len() <= from {
        return;
    }
    for _ in 0..1 + g.below(8) {
        let i = from + g.below(bytes.len() - from);
        bytes[i] ^= 1 << g.below(8);
    }
}

fn replace_bytes(g: &mut Gen, bytes: &mut Vec<u8>, from: usize) {
    if bytes.len() <= from {
        return;
    }
    for _ in 0..1 + g.below(8) {
        let i = from + g.below(bytes.len() - from);
        match g.below(4) {
            0 => bytes[i] = g.byte(),
            1 => bytes[i] = *g.pick(INTERESTING_BYTES),
            2 => {
                bytes.remove(i);
                if bytes.len() <= from {
                    return;
                }
            }
            _ => bytes.insert(i, *g.pick(INTERESTING_BYTES)),
        }
    }
}

fn copy_chunk(g: &mut Gen, bytes: &mut Vec<u8>) {
    if bytes.is_empty() {
        return;
    }
    let start = g.below(bytes.len());
    let end = start + g.below((bytes.len() - start).min(64) + 1);
    let chunk = bytes[start..end].to_vec();
    let at = g.below(bytes.len() + 1);
    bytes.splice(at..at, chunk);
}

// ==================== One input ====================

fn mutate(g: &mut Gen, seeds: &[Vec<u8>], docs: &[Value]) -> Vec<u8> {
    let i = g.below(seeds.len());
    let base = &seeds[i];
    let donor = g.below(seeds.len());
    match g.below(100) {
        // Random bytes, bare or behind a valid header.
        0..=3 => (0..g.below(600)).map(|_| g.byte()).collect(),
        4..=6 => seal(&(0..g.below(600)).map(|_| g.byte()).collect::<Vec<u8>>()),
        7..=8 => seal(
            &(0..g.below(200))
                .map(|_| *g.pick(INTERESTING_BYTES))
                .collect::<Vec<u8>>(),
        ),
        // Bit flips and byte replacements anywhere in a valid snapshot.
        9..=13 => {
            let mut bytes = base.clone();
            flip_bits(g, &mut bytes, 0);
            bytes
        }
        14..=18 => {
            let mut bytes = base.clone();
            replace_bytes(g, &mut bytes, 0);
            bytes
        }
        // Truncations, raw and resealed.
        19..=20 => base[..g.below(base.len() + 1)].to_vec(),
        21..=23 => {
            let body = payload(base);
            seal(&body[..g.below(body.len() + 1)])
        }
        // Header edits over a valid payload.
        24..=26 => {
            let body = payload(base);
            let length = body.len() as u64;
            let crc = crc32fast::hash(body);
            match g.below(4) {
                0 => seal_with(*g.pick(&[0, 2, 3, u32::MAX, 1 << 16]), length, crc, body),
                1 => seal_with(1, *g.pick(&[0, length - 1, length + 1, u64::MAX, 1 << 63]), crc, body),
                2 => seal_with(1, length, crc ^ (1 << g.below(32)), body),
                _ => {
                    let mut bytes = base.clone();
                    if g.chance(50) {
                        bytes.extend((0..1 + g.below(8)).map(|_| g.byte()));
                    } else {
                        bytes.splice(0..0, (0..1 + g.below(8)).map(|_| g.byte()));
                    }
                    bytes
                }
            }
        }
        // Splices of two snapshots: raw, and of two payloads resealed.
        27..=29 => {
            let other = &seeds[donor];
            let mut bytes = base[..g.below(base.len() + 1)].to_vec();
            bytes.extend_from_slice(&other[g.below(other.len() + 1)..]);
            bytes
        }
        30..=34 => {
            let (a, b) = (payload(base), payload(&seeds[donor]));
            let mut body = a[..g.below(a.len() + 1)].to_vec();
            body.extend_from_slice(&b[g.below(b.len() + 1)..]);
            seal(&body)
        }
        // Byte edits inside the payload, resealed.
        35..=49 => {
            let mut body = payload(base).to_vec();
            match g.below(3) {
                0 => flip_bits(g, &mut body, 0),
                1 => replace_bytes(g, &mut body, 0),
                _ => copy_chunk(g, &mut body),
            }
            seal(&body)
        }
        // JSON-level edits, resealed.
        _ => {
            let mut doc = docs[i].clone();
            for _ in 0..1 + g.below(4) {
                if g.chance(45) {
                    semantic_edit(g, &mut doc);
                } else {
                    generic_edit(g, &mut doc, &docs[donor]);
                }
            }
            seal(&render(g, &doc))
        }
    }
}

// ==================== The oracle ====================

#[derive(Default)]
struct Tally {
    inputs: u64,
    rejected: u64,
    accepted: u64,
    /// Each kind of problem, with the first input that showed it.
    findings: BTreeMap<String, Vec<u8>>,
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic".to_owned()
    }
}

thread_local! {
    static JUDGING: Cell<bool> = const { Cell::new(false) };
}

/// Panics inside [`judge`] are caught and reported as findings, so the default hook's message is
/// only printed for panics elsewhere (a bug in this file).
fn silence_panics_in_judge() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !JUDGING.with(Cell::get) {
                default(info);
            }
        }));
    });
}

/// Restore `input` and hold the result to the contract in the module docs.
fn check(input: &[u8], tally: &mut Tally) {
    tally.inputs += 1;
    let outcome = if ring_slots(input) > RING_LIMIT {
        Ok(judge_in_child(input))
    } else {
        JUDGING.with(|j| j.set(true));
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| judge(input)));
        JUDGING.with(|j| j.set(false));
        outcome
    };
    let problem = match outcome {
        Ok(Ok(true)) => {
            tally.accepted += 1;
            return;
        }
        Ok(Ok(false)) => {
            tally.rejected += 1;
            return;
        }
        Ok(Err(problem)) => problem,
        Err(payload) => format!("panic: {}", panic_message(payload.as_ref())),
    };
    // Keep one input per kind of problem (numbers stripped so that kinds group).
    let kind: String = problem.chars().filter(|c| !c.is_ascii_digit()).take(200).collect();
    tally.findings.entry(kind).or_insert_with(|| input.to_vec());
}

/// Decision slots (32 bytes each) beyond which an input is judged in a child process: restoring
/// it may allocate more memory than there is, and a failed allocation aborts the process.
const RING_LIMIT: u64 = 1 << 25;

/// The decision slots `Ledger::from_parts` fills for a sealed input, `min(next_id, max_pending)`,
/// or 0 when the input is not a well-sealed JSON payload.
fn ring_slots(input: &[u8]) -> u64 {
    let body = payload(input);
    if input.len() < HEADER || input[20..24] != crc32fast::hash(body).to_le_bytes() {
        return 0;
    }
    let Ok(doc) = serde_json::from_slice::<Value>(body) else {
        return 0;
    };
    let max_pending = doc.pointer("/config/max_pending").and_then(Value::as_u64).unwrap_or(0);
    u64_at(&doc, "next_id").min(max_pending)
}

/// [`judge`] in a child process (this test binary running `judge_one`) under a 2 GB address
/// space limit, so that an abort on a failed allocation is a finding rather than the end of the
/// run.
fn judge_in_child(input: &[u8]) -> Result<bool, String> {
    let folder = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("fuzz-tmp");
    let file = folder.join(format!("input-{}.bin", std::process::id()));
    std::fs::create_dir_all(&folder)
        .and_then(|()| std::fs::write(&file, input))
        .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let status = std::process::Command::new("sh")
        .args([
            "-c",
            "ulimit -v 2000000; exec \"$0\" --exact judge_one --ignored --quiet",
        ])
        .arg(exe)
        .env("FUZZ_ONE_INPUT", &file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map_err(|e| format!("cannot run the child: {e}"))?;
    match status.code() {
        Some(0) => Ok(true),
        Some(101) => Err("judged in a child process: a problem (rerun with FUZZ_ONE_INPUT to see it)".into()),
        _ => Err(format!(
            "restore aborted the process ({status}): a failed allocation for the decision ring of {} slots",
            ring_slots(input)
        )),
    }
}

/// Ok(true) if accepted and sound, Ok(false) if rejected with a message, Err(why) otherwise.
fn judge(input: &[u8]) -> Result<bool, String> {
    let mut router = match Router::restore(input) {
        Err(error) => {
            return if error.to_string().trim().is_empty() {
                Err("rejected without a message".into())
            } else {
                Ok(false)
            };
        }
        Ok(router) => router,
    };
    let snapshot = router
        .snapshot()
        .map_err(|e| format!("accepted, but cannot snapshot: {e}"))?;
    let mut again = Router::restore(&snapshot).map_err(|e| format!("accepted, but its snapshot is refused: {e}"))?;
    if again != router {
        return Err("accepted, but its snapshot restores to a different router".into());
    }
    if again.snapshot().ok().as_deref() != Some(snapshot.as_slice()) {
        return Err("accepted, but snapshot -> restore -> snapshot changes the bytes".into());
    }
    let models = router.config().models.clone();
    if router.pending() > router.config().max_pending {
        return Err("accepted more pending decisions than max_pending".into());
    }
    let contexts: Vec<String> = router.contexts().iter().map(|c| (*c).to_owned()).collect();
    for context in &contexts {
        let p = router.probabilities(context);
        let sum: f64 = p.iter().sum();
        if p.len() != models.len() || p.iter().any(|x| !(0.0..=1.0).contains(x)) || (sum - 1.0).abs() > 1e-6 {
            return Err(format!(
                "accepted a context whose distribution is off the simplex: {p:?}"
            ));
        }
        if router.feedback_counts(context).len() != models.len() {
            return Err("accepted a context without one feedback count per model".into());
        }
    }
    exercise(router, &snapshot, &contexts, &models)?;
    Ok(true)
}

/// The restored router keeps its promises: restored pending decisions take feedback once, and
/// new decisions in every context take feedback that counts once.
fn exercise(mut router: Router, snapshot: &[u8], contexts: &[String], models: &[String]) -> Result<(), String> {
    let doc: Value = serde_json::from_slice(payload(snapshot)).map_err(|e| format!("own snapshot is not JSON: {e}"))?;
    let observation = Observation::new(0.7, 0.001, 0.4).map_err(|e| e.to_string())?;
    let pending = doc
        .get("pending")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for p in pending.iter().rev().take(3) {
        if p.get("context").is_some_and(Value::is_null) {
            // A decision whose context was evicted: its feedback names the context itself.
            continue;
        }
        let field = |k: &str| p.get(k).and_then(Value::as_u64).unwrap_or(u64::MAX);
        let (id, context, arm) = (field("id"), field("context"), field("arm"));
        let (Some(context), Some(model)) = (
            usize::try_from(context).ok().and_then(|c| contexts.get(c)),
            usize::try_from(arm).ok().and_then(|a| models.get(a)),
        ) else {
            return Err("own snapshot holds a pending decision for a missing context or model".into());
        };
        redeem(&mut router, id, model, context, observation)?;
        if router.feedback(id, model, context, observation).is_ok() {
            return Err("a restored pending decision took feedback twice".into());
        }
    }
    for context in contexts
        .iter()
        .take(3)
        .chain(std::iter::once(&"a new context".to_owned()))
    {
        let d = match router.select(Some(context), Subset::ALL) {
            Ok(d) => d,
            // A router restored near the 2^63 id cap may run out of ids: a documented refusal.
            Err(e) if exhausted(&e) => break,
            Err(e) => return Err(format!("select refused in a restored router: {e}")),
        };
        redeem(&mut router, d.id, &models[d.arm], context, observation)?;
        if models.len() > 1 {
            let mask: Vec<bool> = (0..models.len()).map(|m| m != d.arm).collect();
            let e = match router.select(Some(context), Subset(Some(&mask))) {
                Ok(e) => e,
                Err(e) if exhausted(&e) => break,
                Err(e) => return Err(format!("subset select refused in a restored router: {e}")),
            };
            if e.arm == d.arm {
                return Err("a restored router selected an excluded model".into());
            }
        }
    }
    let after = router
        .snapshot()
        .map_err(|e| format!("cannot snapshot after use: {e}"))?;
    Router::restore(&after).map_err(|e| format!("snapshot after use is refused: {e}"))?;
    Ok(())
}

/// The refusal of a router that has issued every decision id it may (2^63).
fn exhausted(error: &Error) -> bool {
    error.to_string().contains("has issued every id it can")
}

fn redeem(router: &mut Router, id: u64, model: &str, context: &str, observation: Observation) -> Result<(), String> {
    let arm = router.model_index(model).map_err(|e| e.to_string())?;
    let before = router.feedback_counts(context).get(arm).copied();
    let reward = router
        .feedback(id, model, context, observation)
        .map_err(|e| format!("feedback refused in a restored router: {e}"))?;
    if !(0.0..=1.0).contains(&reward) {
        return Err(format!("reward {reward} outside [0, 1] in a restored router"));
    }
    let after = router.feedback_counts(context).get(arm).copied();
    if before.and_then(|b| b.checked_add(1)) != after {
        return Err(format!(
            "a feedback did not add exactly one to the count ({before:?} -> {after:?})"
        ));
    }
    Ok(())
}

// ==================== Runs ====================

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Run `inputs` inputs from `seed`: the truncation sweeps first, then random mutations.
fn run(inputs: u64, seed: u64) -> Tally {
    let seeds = seeds();
    let docs: Vec<Value> = seeds
        .iter()
        .map(|s| serde_json::from_slice(payload(s)).unwrap_or(Value::Null))
        .collect();
    let mut tally = Tally::default();
    silence_panics_in_judge();
    for snapshot in &seeds {
        check(snapshot, &mut tally);
        if !tally.findings.is_empty() || tally.accepted != tally.inputs {
            break;
        }
        for length in 0..snapshot.len() {
            check(&snapshot[..length], &mut tally);
        }
        let body = payload(snapshot);
        for length in 0..body.len() {
            check(&seal(&body[..length]), &mut tally);
        }
    }
    let mut g = Gen(seed);
    while tally.inputs < inputs {
        let input = mutate(&mut g, &seeds, &docs);
        check(&input, &mut tally);
    }
    tally
}

fn report(tally: &Tally, seed: u64) {
    if tally.findings.is_empty() {
        return;
    }
    let folder = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("fuzz-findings");
    let _ = std::fs::create_dir_all(&folder);
    let mut text = format!("{} kind(s) of problem (seed {seed}):\n", tally.findings.len());
    for (n, (kind, input)) in tally.findings.iter().enumerate() {
        let file = folder.join(format!("finding-{seed}-{n}.bin"));
        let _ = std::fs::write(&file, input);
        let shown = if input.len() > HEADER {
            format!(
                "{} | {}",
                hex(&input[..HEADER]),
                String::from_utf8_lossy(&input[HEADER..])
            )
        } else {
            hex(input)
        };
        let _ = writeln!(text, "- {kind}\n  input ({}): {shown}", file.display());
    }
    panic!("{text}");
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[test]
fn the_seeds_are_valid_and_varied() {
    let seeds = seeds();
    for snapshot in &seeds {
        let mut router = Router::restore(snapshot).unwrap();
        assert_eq!(router.snapshot().unwrap(), *snapshot);
    }
    let text: String = seeds
        .iter()
        .map(|s| String::from_utf8_lossy(payload(s)).into_owned())
        .collect();
    for needle in [
        "\"locked\":1",
        "\"locked\":null",
        "sample_average",
        "paper",
        "\"prior\":[",
        "\"pending\":[{",
    ] {
        assert!(text.contains(needle), "no seed holds {needle}");
    }
}

/// Judge the one input in the file `FUZZ_ONE_INPUT` (used by `judge_in_child`, and to replay a
/// finding: `FUZZ_ONE_INPUT=target/fuzz-findings/finding-1-0.bin cargo test --test fuzz_snapshot
/// -- --ignored --exact judge_one --nocapture`).
#[test]
#[ignore = "judges the input in FUZZ_ONE_INPUT"]
fn judge_one() {
    let path = std::env::var("FUZZ_ONE_INPUT").expect("FUZZ_ONE_INPUT names the input file");
    let input = std::fs::read(&path).unwrap();
    match judge(&input) {
        Ok(accepted) => eprintln!("{}", if accepted { "accepted and sound" } else { "rejected" }),
        Err(problem) => panic!("{problem}"),
    }
}

#[test]
fn a_snapshot_demanding_a_huge_decision_ring_is_refused_not_an_abort() {
    // Resealed with a ring of 2^40 slots: judged in a child, never in this process.
    let seeds = seeds();
    let mut doc: Value = serde_json::from_slice(payload(&seeds[3])).unwrap();
    doc["next_id"] = Value::from(1u64 << 40);
    doc["config"]["max_pending"] = Value::from(1u64 << 40);
    let input = seal(&serde_json::to_vec(&doc).unwrap());
    assert_eq!(ring_slots(&input), 1 << 40);
    assert_eq!(ring_slots(&seeds[3]), 0);
    let mut tally = Tally::default();
    check(&input, &mut tally);
    assert_eq!(tally.inputs, 1);
    assert!(
        tally.findings.is_empty(),
        "{:?}",
        tally.findings.keys().collect::<Vec<_>>()
    );
}

#[test]
fn fuzz_quick() {
    let seed = env_u64("FUZZ_SEED", 1);
    let tally = run(env_u64("FUZZ_QUICK_INPUTS", 25_000), seed);
    report(&tally, seed);
    // The mutations reach both outcomes in quantity: the oracle is not checking nothing.
    assert!(
        tally.accepted > 100 && tally.rejected > 10_000,
        "{} accepted, {} rejected",
        tally.accepted,
        tally.rejected
    );
}

#[test]
#[ignore = "one million inputs: run with --release -- --ignored --nocapture"]
fn fuzz_million() {
    let seed = env_u64("FUZZ_SEED", 1);
    let inputs = env_u64("FUZZ_INPUTS", 1_000_000);
    let start = Instant::now();
    let tally = run(inputs, seed);
    let seconds = start.elapsed().as_secs_f64();
    eprintln!(
        "fuzz_snapshot: {} inputs (seed {seed}) in {seconds:.1} s, {:.0} inputs/s; {} accepted, {} rejected, {} kind(s) of problem",
        tally.inputs,
        tally.inputs as f64 / seconds,
        tally.accepted,
        tally.rejected,
        tally.findings.len()
    );
    report(&tally, seed);
    assert!(tally.inputs >= inputs);
}
