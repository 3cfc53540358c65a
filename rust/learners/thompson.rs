//! Thompson sampling over Beta posteriors, as probability matching.
//!
//! Each model has a Beta(`α`, `β`) posterior over its mean reward, starting at the configured
//! `prior = (α₀, β₀)`. A reward `r` in [0, 1] adds `r` to `α` and `1 − r` to `β`: a fractional
//! reward counts as a fractional success and failure, so the posterior mean stays the running
//! mean reward and the update is deterministic (the Bernoulli trick of drawing a 0/1 outcome
//! with probability `r` would make learned state depend on local randomness). With
//! `discount = γ < 1`, every feedback first moves all posteriors back toward the prior,
//! `α ← α₀ + γ(α − α₀)` (likewise `β`), so old evidence fades with a memory of about
//! `1/(1 − γ)` feedbacks and a changed model is noticed.
//!
//! Thompson sampling picks each model with the posterior probability that it is the best one.
//! Instead of drawing one sample per posterior (whose probability of choosing a model has no
//! closed form), this learner computes those probabilities after every feedback and draws the
//! model from them: it is the same policy, the probability it reports is exactly the one it
//! drew with, and a selection consumes one random number. The probabilities are computed with
//! each posterior replaced by the normal of the same mean and variance, by 8-point
//! Gauss–Hermite quadrature of `P(a best) = E[Π_{b≠a} Φ((X_a − μ_b)/σ_b)]`. Against the exact
//! probabilities of the Beta posteriors (computed in rational arithmetic for integer counts,
//! `tests/test_learners.py`) they are within 0.07 while some model has 10 observations or fewer
//! (skewed posteriors are where a normal fits worst), 0.02 once every model has more than 10, and
//! 0.01 past 40 (the largest differences in a sweep of 300 random pools of 2-6 models). That is
//! how far this policy is from exact Thompson sampling; the probability it reports is exact for
//! the policy it runs. Over a subset, the probabilities are renormalized over it.
//!
//! **Cost:** `O(n² · 8)` normal-CDF lookups per feedback for `n` models (each model's probability
//! is a product over all the others at each node), a table lookup each; models whose factor is 1
//! at every node of another's (far below it) are skipped, so a pool where models have separated
//! costs less than one where all overlap.
//!
//! **Shared evidence:** with `share = s > 0` a context selects as if each model's posterior also
//! held `w = min(s, n)` observations at that model's mean over all contexts (the router's pooled
//! [`Evidence`], `n` its pooled count): `α + w·m`, `β + w·(1 − m)`, the same capped
//! hierarchical prior as UCB's `share`. With `floor = f > 0` the probabilities drawn from are
//! `(1 − f)·p + f/allowed` over the allowed models. The pooled evidence moves with every context's feedback, so these probabilities
//! are computed when selecting (twice the cost of a select+feedback without sharing); the
//! probabilities kept in the state, and convergence, stay the context's own.
//!
//! **Convergence:** the leader's probability of being best (by the context's own posteriors)
//! reaches `threshold`.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::changes::ChangeDetector;
use crate::error::{Error, Result};
use crate::learner::{Algorithm, Event, Evidence, Models, Query, rank_by};
use crate::learners::automaton::{draw, leader, restrict};
use crate::learners::{check_floor, check_threshold, floored};
use crate::rng::Rng;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThompsonConfig {
    pub discount: f64,
    pub prior: [f64; 2],
    pub threshold: f64,
    /// Pseudo-observations at the pooled mean of all contexts added to each model's posterior
    /// when selecting (0: contexts learn alone).
    #[serde(default)]
    pub share: f64,
    /// Share of decisions drawn uniformly from the allowed models (0: none; absent in
    /// snapshots written before it existed, which restore without it).
    #[serde(default)]
    pub floor: f64,
    /// Restart a context when a change is detected (see [`crate::changes`]); none when absent.
    #[serde(default)]
    pub detect_changes: Option<ChangeDetector>,
    pub lock: bool,
}

impl ThompsonConfig {
    /// With sharing and pooled evidence: the probabilities of the context's posteriors shifted
    /// by `share` observations at each model's pooled mean (see the module docs).
    fn shared(&self, state: &Posteriors, evidence: Option<&Evidence>) -> Option<Vec<f64>> {
        let evidence = evidence.filter(|_| self.share > 0.0)?;
        let mut alpha = state.alpha.clone();
        let mut beta = state.beta.clone();
        for (arm, (a, b)) in alpha.iter_mut().zip(&mut beta).enumerate() {
            if let Some((w, m)) = evidence.prior(arm, self.share) {
                *a += w * m;
                *b += w * (1.0 - m);
            }
        }
        Some(best_probabilities(&alpha, &beta))
    }
}

/// Per model: the Beta posterior, and the probability that it is the best model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Posteriors {
    pub alpha: Vec<f64>,
    pub beta: Vec<f64>,
    pub probabilities: Vec<f64>,
}

impl Models for Posteriors {
    fn models(&self) -> usize {
        self.alpha.len()
    }
}

impl Algorithm for ThompsonConfig {
    type State = Posteriors;

    fn validate(&self, models: usize) -> Result<()> {
        if !(self.discount > 0.0 && self.discount <= 1.0) {
            return Err(Error::parameter("discount", self.discount, "in (0, 1]"));
        }
        if !self.prior.iter().all(|p| p.is_finite() && *p > 0.0) {
            return Err(Error::parameter(
                "prior",
                format!("{:?}", self.prior),
                "two finite, positive Beta parameters (alpha, beta)",
            ));
        }
        if !(self.share.is_finite() && self.share >= 0.0) {
            return Err(Error::parameter(
                "share",
                self.share,
                "finite and >= 0 (pseudo-observations)",
            ));
        }
        if let Some(detector) = &self.detect_changes {
            detector.validate()?;
        }
        check_floor(self.floor)?;
        check_threshold(self.threshold, models)
    }

    fn lock(&self) -> bool {
        self.lock
    }

    fn detector(&self) -> Option<&ChangeDetector> {
        self.detect_changes.as_ref()
    }

    fn discount(&self) -> f64 {
        self.discount
    }

    /// The router's prior, one mean reward in [0, 1] per model, counts as one observation.
    fn initial_state(&self, models: usize, prior: Option<&[f64]>) -> Result<Posteriors> {
        let [a0, b0] = self.prior;
        let means = prior.map_or_else(|| vec![0.0; models], <[f64]>::to_vec);
        if let Some(bad) = means.iter().find(|m| !(0.0..=1.0).contains(*m)) {
            return Err(Error::parameter("prior", bad, "mean rewards in [0, 1]"));
        }
        let (alpha, beta) = match prior {
            Some(_) => (
                means.iter().map(|m| a0 + m).collect(),
                means.iter().map(|m| b0 + 1.0 - m).collect(),
            ),
            None => (vec![a0; models], vec![b0; models]),
        };
        let probabilities = best_probabilities(&alpha, &beta);
        Ok(Posteriors {
            alpha,
            beta,
            probabilities,
        })
    }

    fn select(&self, state: &Posteriors, query: Query<'_>, rng: &mut Rng) -> Result<(usize, f64)> {
        if self.floor > 0.0 {
            return draw(&self.probabilities(state, query), query.subset, rng);
        }
        match self.shared(state, query.evidence) {
            Some(probabilities) => draw(&probabilities, query.subset, rng),
            None => draw(&state.probabilities, query.subset, rng),
        }
    }

    fn probabilities(&self, state: &Posteriors, query: Query<'_>) -> Vec<f64> {
        let restricted = match self.shared(state, query.evidence) {
            Some(probabilities) => restrict(&probabilities, query.subset),
            None => restrict(&state.probabilities, query.subset),
        };
        floored(restricted, query.subset, self.floor)
    }

    fn update(&self, state: &mut Posteriors, event: Event) -> Option<usize> {
        let [a0, b0] = self.prior;
        if self.discount < 1.0 {
            for (a, b) in state.alpha.iter_mut().zip(&mut state.beta) {
                *a = a0 + self.discount * (*a - a0);
                *b = b0 + self.discount * (*b - b0);
            }
        }
        state.alpha[event.arm] += event.reward;
        state.beta[event.arm] += 1.0 - event.reward;
        fill_best_probabilities(&state.alpha, &state.beta, &mut state.probabilities);
        self.converged(state)
    }

    fn converged(&self, state: &Posteriors) -> Option<usize> {
        let (arm, p) = leader(&state.probabilities);
        (p >= self.threshold).then_some(arm)
    }

    fn ranking(&self, state: &Posteriors) -> Vec<usize> {
        let means: Vec<f64> = state.alpha.iter().zip(&state.beta).map(|(a, b)| a / (a + b)).collect();
        rank_by(&means)
    }

    fn validate_state(&self, state: &Posteriors, models: usize) -> Result<()> {
        let positive = |v: &[f64]| v.len() == models && v.iter().all(|x| x.is_finite() && *x > 0.0);
        if !positive(&state.alpha) || !positive(&state.beta) {
            return Err(Error::snapshot(
                "Thompson posteriors must be finite, positive Beta parameters, one pair per model",
            ));
        }
        let expected = best_probabilities(&state.alpha, &state.beta);
        if state.probabilities.len() != models
            || expected
                .iter()
                .zip(&state.probabilities)
                .any(|(e, p)| (e - p).abs() > 1e-9)
        {
            return Err(Error::snapshot(
                "Thompson probabilities disagree with the posteriors they are computed from",
            ));
        }
        Ok(())
    }
}

/// Nodes and weights of 8-point Gauss–Hermite quadrature for the standard normal:
/// `E[f(Z)] ≈ Σ w_i f(z_i)`, exact for polynomials of degree up to 15.
fn gauss_hermite() -> &'static [(f64, f64); NODES] {
    static RULE: OnceLock<[(f64, f64); NODES]> = OnceLock::new();
    RULE.get_or_init(|| {
        // Newton's method on the orthonormal Hermite polynomials (Numerical Recipes' gauher),
        // then rescaled from the weight e^{-x²} to the standard normal density.
        const PI_M4: f64 = 0.751_125_544_464_942_5; // π^(-1/4)
        #[allow(clippy::cast_precision_loss)]
        let n = NODES as f64;
        let mut x = [0.0f64; NODES];
        let mut w = [0.0f64; NODES];
        let mut z = 0.0f64;
        for i in 0..NODES.div_ceil(2) {
            z = match i {
                0 => (2.0 * n + 1.0).sqrt() - 1.855_75 * (2.0 * n + 1.0).powf(-0.166_67),
                1 => z - 1.14 * n.powf(0.426) / z,
                2 => 1.86 * z - 0.86 * x[0],
                3 => 1.91 * z - 0.91 * x[1],
                _ => 2.0 * z - x[i - 2],
            };
            let mut derivative = 1.0;
            for _ in 0..100 {
                let (mut p1, mut p2) = (PI_M4, 0.0);
                for j in 1..=NODES {
                    #[allow(clippy::cast_precision_loss)]
                    let j = j as f64;
                    let p3 = p2;
                    p2 = p1;
                    p1 = z * (2.0 / j).sqrt() * p2 - ((j - 1.0) / j).sqrt() * p3;
                }
                derivative = (2.0 * n).sqrt() * p2;
                let previous = z;
                z = previous - p1 / derivative;
                if (z - previous).abs() <= 1e-14 {
                    break;
                }
            }
            x[i] = z;
            x[NODES - 1 - i] = -z;
            w[i] = 2.0 / (derivative * derivative);
            w[NODES - 1 - i] = w[i];
        }
        let scale = std::f64::consts::PI.sqrt();
        std::array::from_fn(|i| (x[i] * std::f64::consts::SQRT_2, w[i] / scale))
    })
}

const NODES: usize = 8;
/// Beyond this many standard deviations a normal CDF is 0 or 1 to within 1e-16.
const TAIL: f64 = 8.3;

const CDF_STEPS: usize = 4096;

/// The standard normal CDF tabulated over [−TAIL, TAIL] (built once from [`normal_cdf`]), for
/// [`fast_cdf`]: a lookup instead of an `exp`. Each step holds its value and the difference to
/// the next, so an interpolation reads one entry.
fn cdf_table() -> &'static [[f64; 2]] {
    static TABLE: OnceLock<Vec<[f64; 2]>> = OnceLock::new();
    TABLE.get_or_init(|| {
        #[allow(clippy::cast_precision_loss)]
        let values: Vec<f64> = (0..=CDF_STEPS + 1)
            .map(|i| normal_cdf(-TAIL + 2.0 * TAIL * i as f64 / CDF_STEPS as f64))
            .collect();
        values.windows(2).map(|pair| [pair[0], pair[1] - pair[0]]).collect()
    })
}

/// The standard normal CDF by linear interpolation in `table` (error below 1e-6).
#[inline]
fn fast_cdf(table: &[[f64; 2]], x: f64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    const SCALE: f64 = CDF_STEPS as f64 / (2.0 * TAIL);
    #[allow(clippy::cast_precision_loss)]
    let position = ((x + TAIL) * SCALE).clamp(0.0, CDF_STEPS as f64);
    // Through i64, not usize: x86-64 converts signed integers to and from f64 in one
    // instruction each, unsigned ones in about ten (same values: `position` is in [0, STEPS]).
    #[allow(clippy::cast_possible_truncation)] // clamped into [0, STEPS]
    let i = position as i64;
    #[allow(clippy::cast_precision_loss)]
    let fraction = position - i as f64;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let [value, step] = table[i as usize];
    value + fraction * step
}

/// The standard normal CDF (Numerical Recipes' erfc, relative error below 1.2e-7).
fn normal_cdf(x: f64) -> f64 {
    let z = x.abs() * std::f64::consts::FRAC_1_SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98 + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let tail = 0.5 * t * poly.exp();
    if x >= 0.0 { 1.0 - tail } else { tail }
}

/// Per model, the probability that its mean reward is the largest, with each Beta posterior
/// taken as the normal of its mean and variance (see the module docs). Sums to 1.
pub(crate) fn best_probabilities(alpha: &[f64], beta: &[f64]) -> Vec<f64> {
    let mut probabilities = Vec::with_capacity(alpha.len());
    fill_best_probabilities(alpha, beta, &mut probabilities);
    probabilities
}

/// Per model its posterior's mean, standard deviation and the inverse of that; and the floor,
/// the highest lower end of any model's plausible range: no model can be best below it.
fn moments_and_floor(alpha: &[f64], beta: &[f64]) -> (Vec<(f64, f64, f64)>, f64) {
    let moments: Vec<(f64, f64, f64)> = alpha
        .iter()
        .zip(beta)
        .map(|(&a, &b)| {
            let n = a + b;
            let sd = (a * b / (n * n * (n + 1.0))).sqrt();
            (a / n, sd, 1.0 / sd)
        })
        .collect();
    let floor = moments
        .iter()
        .map(|(m, s, _)| m - TAIL * s)
        .fold(f64::NEG_INFINITY, f64::max);
    (moments, floor)
}

/// [`best_probabilities`] into `probabilities`, reusing its allocation (a feedback's update).
fn fill_best_probabilities(alpha: &[f64], beta: &[f64], probabilities: &mut Vec<f64>) {
    let (moments, floor) = moments_and_floor(alpha, beta);
    let rule = gauss_hermite();
    let table = cdf_table();
    // The quadrature's nodes run in one pass per other model (rather than the models per node):
    // each node's product takes the same factors in the same order, so the result is the same
    // to the bit, in a loop short enough to pipeline. A model whose factor is 1 at every node
    // (far below) is skipped; a node where some factor is 0 (that model far above) adds 0.
    let (low, high) = rule
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &(z, _)| {
            (lo.min(z), hi.max(z))
        });
    probabilities.clear();
    probabilities.extend(moments.iter().enumerate().map(|(a, &(mean, sd, _))| {
        if mean + TAIL * sd < floor {
            return 0.0;
        }
        let points: [f64; NODES] = std::array::from_fn(|k| mean + sd * rule[k].0);
        let mut products: [f64; NODES] = std::array::from_fn(|k| rule[k].1);
        let (lowest, highest) = (mean + sd * low, mean + sd * high);
        for (b, &(mb, _, inverse)) in moments.iter().enumerate() {
            if b == a || (lowest - mb) * inverse >= TAIL {
                continue;
            }
            if (highest - mb) * inverse <= -TAIL {
                return 0.0;
            }
            for (product, &x) in products.iter_mut().zip(&points) {
                let u = (x - mb) * inverse;
                *product *= if u >= TAIL {
                    1.0
                } else if u <= -TAIL {
                    0.0
                } else {
                    fast_cdf(table, u)
                };
            }
        }
        let mut total = 0.0;
        for product in products {
            total += product;
        }
        total
    }));
    let total: f64 = probabilities.iter().sum();
    if total > 0.0 && total.is_finite() {
        for p in probabilities.iter_mut() {
            *p /= total;
        }
    } else {
        #[allow(clippy::cast_precision_loss)]
        let uniform = 1.0 / probabilities.len().max(1) as f64;
        probabilities.fill(uniform);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(discount: f64) -> ThompsonConfig {
        ThompsonConfig {
            discount,
            prior: [1.0, 1.0],
            threshold: 0.99,
            share: 0.0,
            floor: 0.0,
            detect_changes: None,
            lock: false,
        }
    }

    /// The computation before its loops were exchanged, kept to show the result is unchanged.
    fn reference_probabilities(alpha: &[f64], beta: &[f64]) -> Vec<f64> {
        let (moments, floor) = moments_and_floor(alpha, beta);
        let (rule, table) = (gauss_hermite(), cdf_table());
        let mut probabilities: Vec<f64> = moments
            .iter()
            .enumerate()
            .map(|(a, &(mean, sd, _))| {
                if mean + TAIL * sd < floor {
                    return 0.0;
                }
                let mut total = 0.0;
                'nodes: for &(z, w) in rule {
                    let x = mean + sd * z;
                    let mut product = w;
                    for (b, &(mb, _, inverse)) in moments.iter().enumerate() {
                        let u = (x - mb) * inverse;
                        if b == a || u >= TAIL {
                            continue;
                        }
                        if u <= -TAIL {
                            continue 'nodes;
                        }
                        product *= fast_cdf(table, u);
                    }
                    total += product;
                }
                total
            })
            .collect();
        let total: f64 = probabilities.iter().sum();
        if total > 0.0 && total.is_finite() {
            for p in &mut probabilities {
                *p /= total;
            }
        } else {
            #[allow(clippy::cast_precision_loss)]
            let uniform = 1.0 / probabilities.len().max(1) as f64;
            probabilities.fill(uniform);
        }
        probabilities
    }

    proptest::proptest! {
        /// Same seeds, same decisions: the faster loop gives the old probabilities to the bit.
        #[test]
        fn probabilities_are_unchanged_to_the_bit(
            posteriors in proptest::collection::vec((0.01..2000.0f64, 0.01..2000.0f64), 1..20),
            tight in proptest::collection::vec((0usize..1000, 0usize..1000), 1..8),
        ) {
            for (alpha, beta) in [
                posteriors.iter().map(|p| p.0).zip(posteriors.iter().map(|p| p.1)).unzip::<f64, f64, Vec<f64>, Vec<f64>>(),
                // Integer counts, as accuracy-only rewards give: ties and near-ties.
                #[allow(clippy::cast_precision_loss)]
                tight.iter().map(|&(w, l)| (1.0 + w as f64, 1.0 + l as f64)).unzip(),
            ] {
                let fast = best_probabilities(&alpha, &beta);
                let reference = reference_probabilities(&alpha, &beta);
                proptest::prop_assert!(
                    fast.iter().zip(&reference).all(|(f, r)| f.to_bits() == r.to_bits()),
                    "{fast:?} != {reference:?}"
                );
            }
        }
    }

    #[test]
    fn quadrature_integrates_the_normal_moments() {
        let rule = gauss_hermite();
        let moment = |k: i32| rule.iter().map(|(z, w)| w * z.powi(k)).sum::<f64>();
        assert!((moment(0) - 1.0).abs() < 1e-13);
        assert!(moment(1).abs() < 1e-13);
        assert!((moment(2) - 1.0).abs() < 1e-12);
        assert!((moment(4) - 3.0).abs() < 1e-11);
    }

    #[test]
    fn normal_cdf_known_values() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(1.0) - 0.841_344_746).abs() < 1e-7);
        assert!((normal_cdf(-1.959_963_985) - 0.025).abs() < 1e-8);
        for i in -1000..=1000 {
            let x = f64::from(i) * 0.0083;
            assert!((fast_cdf(cdf_table(), x) - normal_cdf(x)).abs() < 1e-6, "{x}");
        }
    }

    #[test]
    fn symmetric_posteriors_share_evenly_and_two_models_match_the_closed_form() {
        for p in best_probabilities(&[2.0; 4], &[3.0; 4]) {
            assert!((p - 0.25).abs() < 1e-12);
        }
        // Two normals: P(X_0 > X_1) = Φ((μ0 − μ1)/sqrt(σ0² + σ1²)).
        let (alpha, beta) = ([30.0, 20.0], [20.0, 30.0]);
        let sd = |a: f64, b: f64| (a * b / ((a + b).powi(2) * (a + b + 1.0))).sqrt();
        let exact = normal_cdf(0.2 / (sd(30.0, 20.0).powi(2) * 2.0).sqrt());
        let p = best_probabilities(&alpha, &beta);
        assert!((p[0] - exact).abs() < 1e-6, "{p:?} vs {exact}");
    }

    #[test]
    fn far_behind_models_get_nothing() {
        let p = best_probabilities(&[900.0, 100.0, 500.0], &[100.0, 900.0, 500.0]);
        assert_eq!(p[1], 0.0);
        assert!(p[0] > 0.999_999);
    }

    #[test]
    fn fractional_rewards_keep_the_mean_and_discount_forgets() {
        let c = config(1.0);
        let mut s = c.initial_state(2, None).unwrap();
        for r in [1.0, 0.0, 0.5, 0.5] {
            c.update(
                &mut s,
                Event {
                    arm: 0,
                    reward: r,
                    propensity: 0.5,
                    count: 1,
                },
            );
        }
        assert_eq!((s.alpha[0], s.beta[0]), (3.0, 3.0));
        let d = config(0.5);
        let mut s = d.initial_state(2, None).unwrap();
        let event = |arm| Event {
            arm,
            reward: 1.0,
            propensity: 0.5,
            count: 1,
        };
        d.update(&mut s, event(0));
        d.update(&mut s, event(1));
        // Model 0's success was halved once: α = 1 + 0.5·1.
        assert_eq!((s.alpha[0], s.alpha[1]), (1.5, 2.0));
        assert!(s.probabilities[1] > s.probabilities[0]);
    }

    #[test]
    fn shared_evidence_shifts_the_posteriors_by_share_observations_at_the_pooled_mean() {
        let mut evidence = Evidence::new(3);
        for _ in 0..40 {
            evidence.record(0, 0.2, 1.0);
            evidence.record(1, 0.8, 1.0);
        }
        let fresh = config(1.0).initial_state(3, None).unwrap();
        let query = Query::pooled(crate::subset::Subset::ALL, &evidence);
        // Off by default: the context's own (uniform) probabilities.
        assert_eq!(config(1.0).probabilities(&fresh, query), fresh.probabilities);
        let shared = ThompsonConfig {
            share: 10.0,
            ..config(1.0)
        };
        // Model 2 has no pooled evidence and keeps its prior.
        let expected = best_probabilities(&[1.0 + 2.0, 1.0 + 8.0, 1.0], &[1.0 + 8.0, 1.0 + 2.0, 1.0]);
        let p = shared.probabilities(&fresh, query);
        // (Up to the rounding of the pooled means: forty 0.2s sum to 8 + 2e-15.)
        assert!(p.iter().zip(&expected).all(|(a, b)| (a - b).abs() < 1e-12), "{p:?}");
        assert!(p[1] > 0.5 && p[0] < p[2], "{p:?}");
        let (arm, probability) = shared.select(&fresh, query, &mut Rng::seed_from_u64(3)).unwrap();
        assert_eq!(probability, p[arm]);
        // Convergence stays the context's own.
        assert_eq!(shared.converged(&fresh), None);
    }

    #[test]
    fn bad_configs_name_the_field() {
        let bad = [
            (
                ThompsonConfig {
                    discount: 0.0,
                    ..config(1.0)
                },
                "discount",
            ),
            (
                ThompsonConfig {
                    discount: 1.5,
                    ..config(1.0)
                },
                "discount",
            ),
            (
                ThompsonConfig {
                    prior: [0.0, 1.0],
                    ..config(1.0)
                },
                "prior",
            ),
            (
                ThompsonConfig {
                    threshold: 0.2,
                    ..config(1.0)
                },
                "threshold",
            ),
            (
                ThompsonConfig {
                    share: -1.0,
                    ..config(1.0)
                },
                "share",
            ),
        ];
        for (c, field) in bad {
            assert!(
                Algorithm::validate(&c, 3).unwrap_err().to_string().starts_with(field),
                "{c:?}"
            );
        }
    }
}
