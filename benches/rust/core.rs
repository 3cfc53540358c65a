//! Criterion benches of the core, no Python: `cargo bench --bench core` (or `make bench`).
//!
//! Every learning bench keeps its learners in a steady state, so that each iteration does the
//! same work: the observation scores a reward of exactly 0 (no accuracy, full cost and latency),
//! which the automaton applies as "inaction" and Q-learning as a move toward 0, so no context ever
//! converges or locks. The arithmetic is the same as for any other reward; only the state stays
//! put (a uniform automaton, all-zero Q-values with epsilon decaying to its floor).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // a bench binary, not the library

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

use _core::automaton::AutomatonConfig;
use _core::changes::ChangeDetector;
use _core::learner::Policy;
use _core::learners::exp3::Exp3Config;
use _core::learners::thompson::ThompsonConfig;
use _core::learners::ucb::{Bound, UcbConfig};
use _core::q_learning::{QConfig, StepSize};
use _core::reward::{Observation, Reward, RewardForm};
use _core::router::{Config, Router};
use _core::subset::Subset;

const MODELS: [usize; 4] = [2, 4, 16, 64];

fn automaton() -> Policy {
    Policy::LearningAutomaton(AutomatonConfig {
        learning_rate: 0.1,
        threshold: 0.99,
        lock: true,
    })
}

fn q_learning() -> Policy {
    Policy::QLearning(QConfig {
        learning_rate: StepSize::Constant(0.1),
        epsilon: 0.2,
        epsilon_decay: 0.99,
        epsilon_min: 0.01,
        patience: 50,
        share: 0.0,
        lock: true,
    })
}

fn ucb() -> Policy {
    Policy::Ucb(UcbConfig {
        exploration: 0.5,
        discount: 1.0,
        bound: Bound::Tuned,
        share: 5.0,
        floor: 0.0,
        detect_changes: None,
        lock: false,
    })
}

/// The default learner, `UCB()`: shared prior, 1% exploration floor and the change detector.
fn ucb_default() -> Policy {
    Policy::Ucb(UcbConfig {
        exploration: 0.5,
        discount: 1.0,
        bound: Bound::Tuned,
        share: 5.0,
        floor: 0.01,
        detect_changes: Some(ChangeDetector {
            delta: 0.01,
            stride: 20,
        }),
        lock: false,
    })
}

fn thompson() -> Policy {
    Policy::ThompsonSampling(ThompsonConfig {
        discount: 1.0,
        prior: [1.0, 1.0],
        threshold: 0.99,
        share: 0.0,
        floor: 0.0,
        detect_changes: None,
        lock: false,
    })
}

fn exp3() -> Policy {
    Policy::Exp3(Exp3Config {
        gamma: 0.1,
        discount: 1.0,
        threshold: 0.99,
        share: 0.0,
        lock: false,
    })
}

/// A router as `pickllm.Router` builds one by default: a million contexts at most.
fn router(models: usize, policy: Policy, max_pending: usize) -> (Router, Vec<String>) {
    bounded_router(models, policy, max_pending, Some(1_000_000))
}

fn bounded_router(
    models: usize,
    policy: Policy,
    max_pending: usize,
    max_contexts: Option<u32>,
) -> (Router, Vec<String>) {
    let names: Vec<String> = (0..models).map(|i| format!("model-{i}")).collect();
    let config = Config {
        models: names.clone(),
        policy,
        reward: Reward::default(),
        prior: None,
        max_pending,
        default_context: "default".into(),
        max_contexts,
    };
    (Router::new(config, 7).unwrap(), names)
}

/// Reward 0 under the default reward: keeps every learner where it is (see the module docs).
fn zero_reward() -> Observation {
    Observation::new(0.0, 0.01, 10.0).unwrap()
}

/// One routing decision and its feedback, as a gateway makes them.
#[inline]
fn select_feedback(router: &mut Router, names: &[String], context: &str, observation: Observation) -> f64 {
    let d = router.select(Some(context), Subset::ALL).unwrap();
    router.feedback(d.id, &names[d.arm], context, observation).unwrap()
}

fn bench_select_feedback(c: &mut Criterion) {
    let mut group = c.benchmark_group("select_feedback");
    let learners = [
        ("automaton", automaton()),
        ("q_learning", q_learning()),
        ("ucb", ucb()),
        ("ucb_default", ucb_default()),
        ("thompson", thompson()),
        ("exp3", exp3()),
    ];
    for (label, policy) in learners {
        for models in MODELS {
            let (mut router, names) = router(models, policy.clone(), 100_000);
            let observation = zero_reward();
            group.bench_with_input(BenchmarkId::new(label, models), &models, |b, _| {
                b.iter(|| select_feedback(&mut router, &names, black_box("finance"), observation));
            });
        }
    }
    group.finish();
}

/// As the Python bench `test_select_feedback_real_rewards`: 4 models, sessions of 1,000
/// decisions each in a fresh context, rewards cycling through 0.93, 0.2, 0.6 and 0.35 (so the
/// learners move and the change detector sees varied rewards).
fn bench_select_feedback_real_rewards(c: &mut Criterion) {
    let mut group = c.benchmark_group("select_feedback_real_rewards");
    let observations = [
        (1.0, 0.001, 1.0),
        (0.0, 0.004, 6.0),
        (1.0, 0.008, 8.0),
        (0.5, 0.006, 5.0),
    ]
    .map(|(a, c, l)| Observation::new(a, c, l).unwrap());
    let learners = [
        ("automaton", automaton()),
        ("ucb_no_floor_no_detector", ucb()),
        ("ucb_default", ucb_default()),
    ];
    for (label, policy) in learners {
        let (mut router, names) = router(4, policy, 100_000);
        let mut decisions = 0usize;
        let mut context = String::from("session-0");
        group.bench_function(label, |b| {
            b.iter(|| {
                if decisions.is_multiple_of(1000) {
                    context = format!("session-{decisions}");
                }
                let observation = observations[decisions % observations.len()];
                decisions += 1;
                select_feedback(&mut router, &names, black_box(&context), observation)
            });
        });
    }
    group.finish();
}

fn bench_select(c: &mut Criterion) {
    let mut group = c.benchmark_group("select");
    for (label, policy) in [("automaton", automaton()), ("q_learning", q_learning())] {
        for models in MODELS {
            // Selections nobody answers: the oldest expire as the ring of max_pending wraps.
            let (mut router, _) = router(models, policy.clone(), 100_000);
            group.bench_with_input(BenchmarkId::new(label, models), &models, |b, _| {
                b.iter(|| router.select(Some(black_box("finance")), Subset::ALL).unwrap());
            });
        }
    }
    group.finish();
}

fn bench_reward(c: &mut Criterion) {
    let mut group = c.benchmark_group("reward");
    let linear = Reward::default();
    let paper = Reward {
        form: RewardForm::Paper {
            time_scaling: 1.0,
            latency_floor_ms: 10.0,
            max_value: None,
        },
        ..Reward::default()
    };
    let observation = Observation::new(0.8, 0.002, 1.3).unwrap();
    group.bench_function("linear", |b| {
        b.iter(|| black_box(&linear).compute(black_box(observation)))
    });
    group.bench_function("paper", |b| {
        b.iter(|| black_box(&paper).compute(black_box(observation)))
    });
    group.bench_function("validate_observation", |b| {
        b.iter(|| Observation::new(black_box(0.8), black_box(0.002), black_box(1.3)).unwrap());
    });
    group.finish();
}

/// Select + feedback over many contexts, each visited in turn, against one context: the cost of
/// a large table (hashing, cache misses on the learners).
fn bench_contexts(c: &mut Criterion) {
    let mut group = c.benchmark_group("contexts");
    // `automaton_4` is bounded as `pickllm.Router` is by default (max_contexts 1,000,000, never
    // reached here); `automaton_4_unbounded` the same without a bound: their ratio is what the
    // bound's bookkeeping costs.
    let cases = [
        ("automaton_4", 1usize, Some(1_000_000)),
        ("automaton_4", 100_000, Some(1_000_000)),
        ("automaton_4_unbounded", 100_000, None),
    ];
    for (label, count, max_contexts) in cases {
        let (mut router, names) = bounded_router(4, automaton(), 100_000, max_contexts);
        let contexts: Vec<String> = (0..count).map(|i| format!("tenant-{i}")).collect();
        let observation = zero_reward();
        for context in &contexts {
            select_feedback(&mut router, &names, context, observation);
        }
        let mut next = 0;
        group.bench_with_input(BenchmarkId::new(label, count), &count, |b, _| {
            b.iter(|| {
                let context = &contexts[next];
                next = if next + 1 == contexts.len() { 0 } else { next + 1 };
                select_feedback(&mut router, &names, context, observation)
            });
        });
    }
    // Twice as many contexts in turn as `max_contexts` keeps: each selection creates its
    // context afresh and each feedback evicts the least recently learned one.
    {
        let count = 200_000;
        let (mut router, names) = bounded_router(4, automaton(), 100_000, Some(100_000));
        let contexts: Vec<String> = (0..count).map(|i| format!("tenant-{i}")).collect();
        let observation = zero_reward();
        for context in &contexts {
            select_feedback(&mut router, &names, context, observation);
        }
        let mut next = 0;
        group.bench_with_input(BenchmarkId::new("automaton_4_evicting", count), &count, |b, _| {
            b.iter(|| {
                let context = &contexts[next];
                next = if next + 1 == contexts.len() { 0 } else { next + 1 };
                select_feedback(&mut router, &names, context, observation)
            });
        });
        assert!(router.context_counts().evicted > 0);
    }
    group.finish();
}

/// Pending decisions cost O(1): one select + feedback plus one select nobody answers, with the
/// ring holding 0 or 100,000 unanswered decisions. Both variants do the same operations; only the
/// number of live decisions (and the ring's size) differs.
fn bench_pending(c: &mut Criterion) {
    let mut group = c.benchmark_group("pending");
    for outstanding in [0usize, 100_000] {
        // Every other id is an unanswered one, so a ring of 2·outstanding + 2 keeps about
        // `outstanding` of them live once the pre-issued ones have turned over.
        let (mut router, names) = router(4, automaton(), 2 * outstanding + 2);
        for _ in 0..outstanding {
            router.select(Some("other"), Subset::ALL).unwrap();
        }
        let observation = zero_reward();
        group.bench_with_input(BenchmarkId::new("automaton_4", outstanding), &outstanding, |b, _| {
            b.iter(|| {
                router.select(Some(black_box("other")), Subset::ALL).unwrap();
                select_feedback(&mut router, &names, black_box("finance"), observation)
            });
        });
        assert!(router.pending() >= outstanding);
    }
    group.finish();
}

/// What a snapshot holds the router's lock for, with 500,000 contexts: `capture` (shared
/// copy-on-write chunks) against the whole snapshot, which is what it held the lock (and the
/// GIL) for before `capture` existed.
fn bench_snapshot(c: &mut Criterion) {
    let mut group = c.benchmark_group("snapshot_lock");
    group.sample_size(10);
    let (mut router, names) = router(4, automaton(), 16);
    let observation = zero_reward();
    for i in 0..500_000 {
        select_feedback(&mut router, &names, &format!("tenant-{i:07}"), observation);
    }
    group.bench_function("capture/500000", |b| b.iter(|| router.capture()));
    group.bench_function("whole_snapshot/500000", |b| b.iter(|| router.snapshot().unwrap()));
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3))
        .sample_size(50);
    targets = bench_select_feedback, bench_select_feedback_real_rewards, bench_select, bench_reward, bench_contexts, bench_pending, bench_snapshot
}
criterion_main!(benches);
