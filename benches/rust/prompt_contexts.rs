//! Criterion benches of the prompt-to-context mapper: `cargo bench --bench prompt_contexts`.
//!
//! Prompts are synthetic and fixed by a seed: words drawn from a 4,000-word vocabulary, each of
//! four topics favouring its own quarter of it, so the fitted mapper has several clusters as
//! real traffic would. Reported: assigning a 1 KB and a 16 KB prompt, next to the baseline of
//! extracting its features alone (tokenize, hash, count: the part any hashed-feature mapper
//! pays); and one fit on 500 warm-up prompts of about 1 KB.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // a bench binary, not the library

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};

use _core::prompt_contexts::{FitOptions, PromptContexts};
use _core::prompt_features;
use _core::rng::Rng;

const VOCABULARY: usize = 4_000;

fn word(i: usize) -> String {
    // Pronounceable, distinct: base-20 digits as consonant-vowel pairs.
    let (consonants, vowels) = (b"bcdfghklmnprstvz", b"aeiou");
    let mut w = String::new();
    let mut n = i + 1;
    while n > 0 {
        w.push(consonants[n % 16] as char);
        w.push(vowels[(n / 16) % 5] as char);
        n /= 80;
    }
    w
}

/// A prompt of about `bytes` bytes on `topic` (0..4): 70% of its words from the topic's quarter.
fn prompt(rng: &mut Rng, topic: usize, bytes: usize) -> String {
    let mut text = String::new();
    while text.len() < bytes {
        let w = if rng.next_f64() < 0.7 {
            topic * VOCABULARY / 4 + rng.below(VOCABULARY / 4)
        } else {
            rng.below(VOCABULARY)
        };
        text.push_str(&word(w));
        text.push(if rng.below(12) == 0 { '.' } else { ' ' });
    }
    text
}

fn benches(c: &mut Criterion) {
    let mut rng = Rng::seed_from_u64(1);
    let warmup: Vec<String> = (0..500).map(|i| prompt(&mut rng, i % 4, 1_024)).collect();
    let refs: Vec<&str> = warmup.iter().map(String::as_str).collect();
    let options = FitOptions {
        max_clusters: 16,
        min_silhouette: 0.05,
        seed: 0,
    };
    let mapper = PromptContexts::fit(&refs, &options).unwrap();
    let one_kb = prompt(&mut rng, 2, 1_024);
    let sixteen_kb = prompt(&mut rng, 1, 16_384);

    let mut group = c.benchmark_group("prompt_contexts");
    group.bench_function("features/1KB", |b| {
        b.iter(|| prompt_features::counts(black_box(&one_kb)))
    });
    group.bench_function("assign/1KB", |b| b.iter(|| mapper.assign(black_box(&one_kb))));
    group.bench_function("features/16KB", |b| {
        b.iter(|| prompt_features::counts(black_box(&sixteen_kb)))
    });
    group.bench_function("assign/16KB", |b| b.iter(|| mapper.assign(black_box(&sixteen_kb))));
    group.sample_size(10);
    group.bench_function("fit/500x1KB", |b| {
        b.iter(|| PromptContexts::fit(black_box(&refs), &options).unwrap())
    });
    group.finish();
}

criterion_group!(prompt_contexts, benches);
criterion_main!(prompt_contexts);
