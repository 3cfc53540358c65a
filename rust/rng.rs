//! The named, portable random generator behind every decision.
//!
//! xoshiro256++ (Blackman and Vigna, 2019) seeded through SplitMix64. It is written out here,
//! not taken from `rand`, so that its output is fixed by this file alone: the same seed and the
//! same feedback give the same decisions on every platform and every future version, and its
//! whole state (four words) goes into snapshots as plain integers.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The generator's name, recorded in snapshots.
pub const GENERATOR: &str = "xoshiro256++";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "[u64; 4]", into = "[u64; 4]")]
pub struct Rng {
    s: [u64; 4],
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    /// A generator whose whole future is fixed by `seed`.
    ///
    /// ```
    /// use _core::rng::Rng;
    /// let (mut a, mut b) = (Rng::seed_from_u64(7), Rng::seed_from_u64(7));
    /// assert_eq!(a.next_u64(), b.next_u64());
    /// ```
    #[must_use]
    pub fn seed_from_u64(seed: u64) -> Self {
        let mut sm = seed;
        // SplitMix64 never yields four zero words in a row, so the state is valid.
        Rng {
            s: [
                splitmix64(&mut sm),
                splitmix64(&mut sm),
                splitmix64(&mut sm),
                splitmix64(&mut sm),
            ],
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1) with 53 bits of precision.
    pub fn next_f64(&mut self) -> f64 {
        #[allow(clippy::cast_precision_loss)] // exact: the value has 53 bits
        let top = (self.next_u64() >> 11) as f64;
        top * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in `0..n` without modulo bias (Lemire's multiply-and-reject). `n` > 0.
    pub fn below(&mut self, n: usize) -> usize {
        let n = n as u64;
        let threshold = n.wrapping_neg() % n;
        loop {
            let product = u128::from(self.next_u64()) * u128::from(n);
            #[allow(clippy::cast_possible_truncation)] // keeping the low word is the algorithm
            if (product as u64) >= threshold {
                #[allow(clippy::cast_possible_truncation)] // < n, which came from a usize
                return (product >> 64) as usize;
            }
        }
    }
}

impl TryFrom<[u64; 4]> for Rng {
    type Error = Error;

    fn try_from(s: [u64; 4]) -> Result<Self> {
        if s == [0; 4] {
            return Err(Error::snapshot(
                "generator state is all zeros, which xoshiro256++ never reaches",
            ));
        }
        Ok(Rng { s })
    }
}

impl From<Rng> for [u64; 4] {
    fn from(rng: Rng) -> Self {
        rng.s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_sequence() {
        // Reference: xoshiro256plusplus.c with state {1, 2, 3, 4}.
        let mut rng = Rng { s: [1, 2, 3, 4] };
        let expected = [41_943_041u64, 58_720_359, 3_588_806_011_781_223, 3_591_011_842_654_386];
        for want in expected {
            assert_eq!(rng.next_u64(), want);
        }
    }

    #[test]
    fn same_seed_same_stream_different_seed_different_stream() {
        let mut a = Rng::seed_from_u64(42);
        let mut b = Rng::seed_from_u64(42);
        let mut c = Rng::seed_from_u64(43);
        let xs: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        let zs: Vec<u64> = (0..8).map(|_| c.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
    }

    #[test]
    fn floats_in_unit_interval_and_below_is_uniform_enough() {
        let mut rng = Rng::seed_from_u64(1);
        let mut counts = [0u32; 3];
        for _ in 0..30_000 {
            let x = rng.next_f64();
            assert!((0.0..1.0).contains(&x));
            counts[rng.below(3)] += 1;
        }
        // Each count is Binomial(30000, 1/3): sd ~ 82, so 10,000 +- 500 is over 6 sd.
        for c in counts {
            assert!((9_500..=10_500).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn all_zero_state_is_rejected() {
        assert!(Rng::try_from([0u64; 4]).is_err());
        assert!(Rng::try_from([0, 0, 0, 1]).is_ok());
    }
}
