//! Change detection: a generalized likelihood ratio (GLR) test per model of a context, after
//! Besson, Kaufmann, Maillard and Seznec, "Efficient change-point detection for tackling
//! piecewise-stationary bandits" (JMLR 2022).
//!
//! Each model's rewards since the context's last restart are tested for one change in their
//! mean: for a split of the `n` rewards into the first `n₁` and the last `n₂`, the Bernoulli GLR
//! statistic is `n₁·kl(μ₁, μ) + n₂·kl(μ₂, μ)` (`μ` the mean of all, `kl` the Bernoulli
//! divergence, a valid bound for any reward in [0, 1]); a change is detected when it exceeds
//! `ln(3·n^{3/2} / δ)`, the paper's threshold, for some split. A learner with a detector then
//! restarts the context (every model's statistics, the paper's "global restart"): what it had
//! learned described a world that is gone.
//!
//! **Bounded memory.** The rewards are kept as an exponential histogram (Datar et al.; the
//! buckets of ADWIN): at most [`PER_SIZE`] buckets of each power-of-two size, newest smallest,
//! at most [`MAX_BUCKETS`] in all (the oldest dropped beyond). Splits are tested at bucket
//! boundaries only: fine near the present, where a recent change shows, coarse in the past.
//! Testing fewer splits can only lower the statistic's maximum, so the false-alarm bound of the
//! full test still holds. The test runs every `stride` feedbacks of a model (the paper's
//! subsampling), so its cost, `O(buckets)` logarithms, is paid once per `stride` feedbacks.
//!
//! Like all learned state, the histogram is a function of the ordered events only: replicas
//! detect the same changes at the same events. On every platform: the test's logarithms are
//! the pure-Rust [`libm`] crate's (the same arithmetic everywhere), not `f64::ln`, which calls
//! the platform's math library, whose last bit may differ between systems and versions; a
//! statistic that close to its threshold would otherwise restart one replica and not another.
//! Everything else in the test is IEEE 754 arithmetic and square roots, exact to the bit
//! everywhere.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Buckets of each size before the two oldest of that size merge.
pub const PER_SIZE: usize = 3;
/// Buckets per model at most: [`PER_SIZE`] of each of 20 sizes 1 to 2^19, about 3 million rewards
/// (beyond, the oldest bucket is dropped).
pub const MAX_BUCKETS: usize = 60;

/// The detector's settings, part of a policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeDetector {
    /// The test's false-alarm parameter δ in (0, 1): smaller, fewer false alarms and later
    /// detections.
    pub delta: f64,
    /// Test a model every `stride` feedbacks of it (>= 1).
    pub stride: u32,
}

impl ChangeDetector {
    pub fn validate(&self) -> Result<()> {
        if !(self.delta > 0.0 && self.delta < 1.0) {
            return Err(Error::parameter("detect_changes.delta", self.delta, "in (0, 1)"));
        }
        if self.stride == 0 {
            return Err(Error::parameter("detect_changes.stride", 0, "at least 1"));
        }
        Ok(())
    }
}

/// One model's rewards since the last restart, as buckets `[count, reward sum]`, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct History {
    buckets: Vec<[f64; 2]>,
}

impl History {
    /// Add one reward in [0, 1], merging buckets as the histogram requires.
    pub fn push(&mut self, reward: f64) {
        self.buckets.push([1.0, reward]);
        // From the newest end: a run of more than PER_SIZE buckets of one size merges its two
        // oldest, which may make the next size's run too long in turn.
        let mut end = self.buckets.len();
        loop {
            let size = self.buckets[end - 1][0];
            let start = (0..end)
                .rev()
                .take_while(|&i| self.buckets[i][0] == size)
                .last()
                .unwrap_or(end - 1);
            if end - start <= PER_SIZE {
                break;
            }
            let [n, s] = self.buckets.remove(start + 1);
            self.buckets[start][0] += n;
            self.buckets[start][1] += s;
            end = start + 1;
        }
        if self.buckets.len() > MAX_BUCKETS {
            self.buckets.remove(0);
        }
    }

    /// Whether the GLR test finds a change at some bucket boundary.
    ///
    /// Each split is first bounded without a logarithm: `kl(p, q) ≤ (p − q)² / (q(1 − q))` (the
    /// χ² divergence bounds the Kullback-Leibler one), so a split's statistic is at most
    /// `n·(s₁n − s·n₁)² / (n₁·n₂·s·(n − s))`. A split whose bound is below the threshold, by a
    /// margin far above the rounding of either computation, cannot pass the exact test and is
    /// not given it: the answer is the exact test's, at a fraction of its cost (on a stationary
    /// stream nearly every split is skipped).
    #[must_use]
    pub fn changed(&self, delta: f64) -> bool {
        if self.buckets.len() < 2 {
            return false;
        }
        let (n, s) = self.buckets.iter().fold((0.0, 0.0), |(n, s), b| (n + b[0], s + b[1]));
        let spread = s * (n - s);
        if spread <= 0.0 {
            // Every reward 0 (or every one 1): no split differs.
            return false;
        }
        let threshold = ln(3.0 * n * n.sqrt() / delta);
        // The exact statistic's rounding is within a few ulps of `n`, the bound's within a few
        // ulps of itself: 1e-9 of each is a wide margin.
        let margin = 1e-9 * (n + threshold);
        let mut whole = None;
        let (mut n1, mut s1) = (0.0, 0.0);
        self.buckets[..self.buckets.len() - 1].iter().any(|&[bn, bs]| {
            n1 += bn;
            s1 += bs;
            let (n2, gap) = (n - n1, s1 * n - s * n1);
            let bound = n * gap * gap / (n1 * n2 * spread);
            if bound * (1.0 + 1e-9) < threshold - margin {
                return false;
            }
            let whole = *whole.get_or_insert_with(|| entropy(n, s));
            entropy(n1, s1) + entropy(n2, s - s1) - whole > threshold
        })
    }

    /// The exact test at every bucket boundary, without the bound that skips splits: what
    /// [`History::changed`] must agree with.
    #[cfg(test)]
    fn changed_exactly(&self, delta: f64) -> bool {
        let (n, s) = self.buckets.iter().fold((0.0, 0.0), |(n, s), b| (n + b[0], s + b[1]));
        if self.buckets.len() < 2 {
            return false;
        }
        let threshold = ln(3.0 * n * n.sqrt() / delta);
        let whole = entropy(n, s);
        let (mut n1, mut s1) = (0.0, 0.0);
        self.buckets[..self.buckets.len() - 1].iter().any(|&[bn, bs]| {
            n1 += bn;
            s1 += bs;
            entropy(n1, s1) + entropy(n - n1, s - s1) - whole > threshold
        })
    }

    fn valid(&self) -> bool {
        self.buckets.len() <= MAX_BUCKETS
            && self
                .buckets
                .iter()
                .all(|&[n, s]| n.is_finite() && n >= 1.0 && (-1e-9..=n + 1e-9).contains(&s))
    }
}

/// The natural logarithm, the same bits on every platform (see the module docs).
fn ln(x: f64) -> f64 {
    libm::log(x)
}

/// `n` times the negative Bernoulli entropy of mean `s / n`: `s·ln(s/n) + (n−s)·ln((n−s)/n)`,
/// so that a split's GLR statistic is `entropy(first) + entropy(rest) − entropy(all)`.
fn entropy(n: f64, s: f64) -> f64 {
    let term = |x: f64| if x <= 0.0 { 0.0 } else { x * ln(x / n) };
    term(s.clamp(0.0, n)) + term((n - s).clamp(0.0, n))
}

/// A context's detector state: one history per model and the changes detected.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Changes {
    pub histories: Vec<History>,
    /// Changes detected (restarts) in this context.
    pub detected: u64,
}

impl Changes {
    #[must_use]
    pub fn new(models: usize) -> Self {
        Changes {
            histories: vec![History::default(); models],
            detected: 0,
        }
    }

    /// Record `arm`'s `count`-th reward; true when the test (run every `stride`-th) detects a
    /// change, after which every history starts afresh.
    pub fn observe(&mut self, detector: &ChangeDetector, arm: usize, reward: f64, count: u64) -> bool {
        let Some(history) = self.histories.get_mut(arm) else {
            return false;
        };
        history.push(reward);
        if !count.is_multiple_of(u64::from(detector.stride)) || !history.changed(detector.delta) {
            return false;
        }
        self.histories.iter_mut().for_each(|h| h.buckets.clear());
        self.detected += 1;
        true
    }

    pub fn validate(&self, models: usize) -> Result<()> {
        if self.histories.len() == models && self.histories.iter().all(History::valid) {
            Ok(())
        } else {
            Err(Error::snapshot(
                "change-detection histories must be one per model, each at most 60 buckets of count >= 1 with sums in [0, count]",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn detector() -> ChangeDetector {
        ChangeDetector { delta: 0.01, stride: 1 }
    }

    #[test]
    fn the_histogram_keeps_every_reward_in_few_buckets() {
        let mut h = History::default();
        for i in 0..1000 {
            h.push(f64::from(i % 2));
        }
        let (n, s) = h.buckets.iter().fold((0.0, 0.0), |(n, s), b| (n + b[0], s + b[1]));
        assert_eq!((n, s), (1000.0, 500.0));
        assert!(h.buckets.len() <= PER_SIZE * 10 + 1, "{}", h.buckets.len());
        // Sizes never grow toward the present, and no size holds more than PER_SIZE buckets.
        assert!(h.buckets.windows(2).all(|w| w[0][0] >= w[1][0]));
        for size in h.buckets.iter().map(|b| b[0]) {
            assert!(h.buckets.iter().filter(|b| b[0] == size).count() <= PER_SIZE);
        }
    }

    #[test]
    fn a_drop_is_detected_soon_and_restarts_every_model() {
        let mut changes = Changes::new(2);
        let mut rng = Rng::seed_from_u64(7);
        let mut count = 0;
        for _ in 0..1000 {
            count += 1;
            let reward = f64::from(u8::from(rng.next_f64() < 0.8));
            assert!(
                !changes.observe(&detector(), 0, reward, count),
                "no alarm before the change"
            );
        }
        changes.observe(&detector(), 1, 1.0, 1);
        let delay = (1..=200).find(|_| {
            count += 1;
            let reward = f64::from(u8::from(rng.next_f64() < 0.3));
            changes.observe(&detector(), 0, reward, count)
        });
        // 0.8 to 0.3 after 1,000 rewards: found within a few dozen.
        assert!(delay.is_some_and(|d| d < 60), "{delay:?}");
        assert_eq!(changes.detected, 1);
        assert!(changes.histories.iter().all(|h| h.buckets.is_empty()));
    }

    proptest::proptest! {
        /// The bounded test answers exactly as the full one, on streams with and without a
        /// change, near the threshold included (a jump of random size at a random point).
        #[test]
        fn the_bound_never_changes_the_answer(
            seed in proptest::prelude::any::<u64>(),
            before in 0.0..=1.0f64,
            after in 0.0..=1.0f64,
            split in 1usize..400,
            length in 2usize..600,
            binary in proptest::prelude::any::<bool>(),
            delta in 0.001..0.5f64,
        ) {
            let mut rng = Rng::seed_from_u64(seed);
            let mut h = History::default();
            for i in 0..length {
                let mean = if i < split { before } else { after };
                let reward = if binary { f64::from(u8::from(rng.next_f64() < mean)) } else { mean * rng.next_f64() * 2.0 };
                h.push(reward.min(1.0));
                proptest::prop_assert_eq!(h.changed(delta), h.changed_exactly(delta), "after {} rewards", i + 1);
            }
        }
    }

    /// The test's arithmetic gives these bits on every platform (pure-Rust logarithms, IEEE
    /// 754 for the rest): a replica on another system restarts at the same events. Values
    /// checked against the correctly rounded logarithm (mpmath, 50 digits).
    #[test]
    fn the_test_arithmetic_is_pinned_to_the_bit() {
        let pinned = [
            (ln(2.0), 0x3FE6_2E42_FEFA_39EF_u64),
            (ln(0.3), 0xBFF3_4378_FCBD_A721),
            // The threshold for 100 rewards at delta = 0.01: ln(3 · 100^(3/2) / 0.01).
            (ln(3.0 * 100.0 * 10.0 / 0.01), 0x4029_391B_79F8_4ABC),
            (entropy(10.0, 3.0), 0xC018_6F40_1DB0_C90C),
            (entropy(1000.0, 617.0), 0xC084_CC1C_09B3_34B3),
        ];
        for (value, bits) in pinned {
            assert_eq!(value.to_bits(), bits, "{value:e}: {:#018X}", value.to_bits());
        }
    }

    #[test]
    fn bad_settings_name_the_field() {
        for (bad, field) in [
            (ChangeDetector { delta: 0.0, stride: 1 }, "detect_changes.delta"),
            (ChangeDetector { delta: 0.1, stride: 0 }, "detect_changes.stride"),
        ] {
            assert!(bad.validate().unwrap_err().to_string().starts_with(field));
        }
    }
}
