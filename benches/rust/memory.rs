//! Memory of the core, from the process's resident set (`cargo bench --bench memory`).
//!
//! Allocator-level tools cannot see inside the router from Python, so this binary measures what
//! the operating system charges: VmRSS from /proc/self/status before and after creating
//! 1,000,000 idle contexts (a name, a learner, its slot in the table), and before and after
//! issuing 1,000,000 decisions that stay pending, and along 10,000,000 decisions with feedback on
//! distinct contexts with `max_contexts` set (the resident set must stop growing) against the same
//! without a bound. Prints one JSON object per line.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, missing_docs)] // a bench binary

use _core::automaton::AutomatonConfig;
use _core::learner::Policy;
use _core::q_learning::{QConfig, StepSize};
use _core::reward::{Observation, Reward};
use _core::router::{Config, Router};
use _core::subset::Subset;

const COUNT: usize = 1_000_000;

/// Resident set size in bytes (Linux).
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

fn router(models: usize, policy: Policy, max_pending: usize) -> Router {
    bounded_router(models, policy, max_pending, None)
}

fn bounded_router(models: usize, policy: Policy, max_pending: usize, max_contexts: Option<u32>) -> Router {
    let config = Config {
        models: (0..models).map(|i| format!("model-{i}")).collect(),
        policy,
        reward: Reward::default(),
        prior: None,
        max_pending,
        default_context: "default".into(),
        max_contexts,
    };
    Router::new(config, 7).unwrap()
}

fn policies() -> [(&'static str, Policy); 2] {
    [
        (
            "automaton",
            Policy::LearningAutomaton(AutomatonConfig {
                learning_rate: 0.1,
                threshold: 0.99,
                lock: true,
            }),
        ),
        (
            "q_learning",
            Policy::QLearning(QConfig {
                learning_rate: StepSize::Constant(0.1),
                epsilon: 0.2,
                epsilon_decay: 0.99,
                epsilon_min: 0.01,
                patience: 50,
                share: 0.0,
                lock: true,
            }),
        ),
    ]
}

/// Bytes per idle context: `models` models, `policy`, 1,000,000 contexts.
fn contexts(label: &str, policy: Policy, models: usize) {
    // max_pending 1: the ledger stays one slot, so only the contexts grow.
    let mut router = router(models, policy, 1);
    let before = rss();
    let mut name = String::new();
    for i in 0..COUNT {
        name.clear();
        // Names as a gateway would use them: "tenant-123456", 13 bytes.
        std::fmt::Write::write_fmt(&mut name, format_args!("tenant-{i:06}")).unwrap();
        router.select(Some(&name), Subset::ALL).unwrap();
    }
    let grown = rss().saturating_sub(before);
    assert_eq!(router.contexts().len(), COUNT);
    println!(
        "{{\"kind\": \"context\", \"policy\": \"{label}\", \"models\": {models}, \"count\": {COUNT}, \
         \"rss_bytes\": {grown}, \"bytes_each\": {:.1}, \"target_bytes\": {}}}",
        grown as f64 / COUNT as f64,
        256 + 16 * models
    );
}

/// Bytes per pending decision: one context, a ring large enough that none of 1,000,000 expires.
fn pending() {
    let (_, policy) = policies().into_iter().next().unwrap();
    let mut router = router(4, policy, COUNT);
    router.select(Some("tenant"), Subset::ALL).unwrap();
    let before = rss();
    for _ in 1..COUNT {
        router.select(Some("tenant"), Subset::ALL).unwrap();
    }
    let grown = rss().saturating_sub(before);
    assert_eq!(router.pending(), COUNT);
    println!(
        "{{\"kind\": \"pending\", \"models\": 4, \"count\": {COUNT}, \"rss_bytes\": {grown}, \"bytes_each\": {:.1}}}",
        grown as f64 / COUNT as f64
    );
}

/// Resident set growth along `count` decisions, each with feedback, each in a new context (the
/// way per-user contexts grow when users keep arriving), with `max_contexts` set or not.
fn distinct(max_contexts: Option<u32>, count: usize) {
    let (_, policy) = policies().into_iter().next().unwrap();
    let mut router = bounded_router(4, policy, 1000, max_contexts);
    let observation = Observation::new(0.9, 0.001, 0.5).unwrap();
    let before = rss();
    let mut name = String::new();
    let mut growth = Vec::new();
    for i in 0..count {
        name.clear();
        std::fmt::Write::write_fmt(&mut name, format_args!("user-{i:08}")).unwrap();
        let d = router.select(Some(&name), Subset::ALL).unwrap();
        let model = router.config().models[d.arm].clone();
        router.feedback(d.id, &model, &name, observation).unwrap();
        if (i + 1).is_power_of_two() || (i + 1) % 1_000_000 == 0 {
            growth.push(format!("[{}, {}]", i + 1, rss().saturating_sub(before)));
        }
    }
    let counts = router.context_counts();
    let held = u64::from(counts.learned) + u64::from(counts.unlearned);
    assert_eq!(held + counts.evicted + counts.dropped, count as u64);
    let max = max_contexts.map_or_else(|| "null".to_owned(), |m| m.to_string());
    println!(
        "{{\"kind\": \"distinct_contexts\", \"max_contexts\": {max}, \"decisions\": {count}, \
         \"held\": {held}, \"evicted\": {}, \"rss_bytes\": {}, \"growth\": [{}]}}",
        counts.evicted,
        rss().saturating_sub(before),
        growth.join(", ")
    );
}

/// Each case runs in a fresh process (this binary, re-executed with `--case`), so that memory
/// freed by one case cannot hide the growth of the next.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--case") {
        let case = &args[at + 1..];
        match case[0].as_str() {
            "pending" => pending(),
            "distinct" => distinct(case[1].parse().ok(), case[2].parse().unwrap()),
            label => {
                let (_, policy) = policies().into_iter().find(|(l, _)| *l == label).unwrap();
                contexts(label, policy, case[1].parse().unwrap());
            }
        }
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let mut cases: Vec<Vec<String>> = Vec::new();
    for (label, _) in policies() {
        for models in [4usize, 16, 64] {
            cases.push(vec![label.to_owned(), models.to_string()]);
        }
    }
    cases.push(vec!["pending".to_owned()]);
    for (max_contexts, count) in [("100000", "10000000"), ("none", "1000000")] {
        cases.push(vec!["distinct".to_owned(), max_contexts.to_owned(), count.to_owned()]);
    }
    for case in cases {
        let output = std::process::Command::new(&exe)
            .arg("--case")
            .args(&case)
            .output()
            .unwrap();
        assert!(output.status.success(), "case {case:?} failed");
        print!("{}", String::from_utf8_lossy(&output.stdout));
    }
}
