//! Upper confidence bounds for rewards in [0, 1]: pick the model whose optimistic estimate of
//! its mean reward is highest.
//!
//! Per model the learner keeps the (discounted) number of feedbacks `n`, sum of rewards `s` and
//! sum of squared rewards `q`; `t = Σ n`. With `discount = γ < 1` every feedback first multiplies
//! all three by `γ` (discounted UCB, Garivier and Moulines 2011): old evidence fades, a model
//! not tried for long sees its `n` shrink and its bound widen, so it is tried again.
//!
//! Two bounds, chosen by `bound`:
//! - `"tuned"` (UCB1-tuned, Auer et al. 2002): `μ + sqrt(c·ln t / n · min(1/4, V))` with
//!   `V = q/n − μ² + sqrt(2 ln t / n)`, the variance estimate plus its own confidence width;
//! - `"kl"` (KL-UCB, Garivier and Cappé 2011): the largest `p ≥ μ` with
//!   `n·kl(μ, p) ≤ c·ln t`, `kl` the Bernoulli divergence, found by bisection to 1e-6.
//!
//! `c = exploration` (1.0 is each paper's constant). With `share = s > 0` a context selects
//! as if each model also had `min(s, n)` feedbacks at its mean over all contexts, `n` the
//! pooled feedbacks that mean rests on (the router's pooled [`Evidence`], see
//! [`Evidence::prior`]): a hierarchical prior, so a new context starts from what the pool has
//! learned and its own evidence outweighs the prior once it has more than `s`, and a pooled
//! mean from one unlucky answer weighs one feedback. A model never tried has an infinite bound.
//! Selection picks the highest bound among the allowed models, uniformly among ties (at the
//! start every untried model ties at infinity), with probability 1 / ties; with `floor = f > 0`
//! a share `f` of selections is drawn uniformly over the allowed models instead (one random
//! number decides both), so the probability reported is `(1 − f)/ties + f/allowed` for a
//! leader and `f/allowed` for any other allowed model. With `detect_changes`, a detected change
//! restarts the context (see [`crate::changes`]; the restart is the learner's, in
//! `learner.rs`).
//!
//! **Convergence** (tested as it learns only when it locks): by the learner's own bounds (its own statistics, without shared evidence):
//! the model with the highest mean has a lower bound (the same width below its mean) above every
//! other model's upper bound. A stricter rule (Hoeffding widths, say) would never be met: UCB
//! stops trying a clearly worse model long before such widths separate.

use serde::{Deserialize, Serialize};

use crate::changes::ChangeDetector;
use crate::error::{Error, Result};
use crate::learner::{Algorithm, Event, Evidence, Models, Query, rank_by};
use crate::learners::{check_floor, floored};
use crate::rng::Rng;

/// The highest upper bound over the allowed models (see [`UcbConfig::top`]).
struct Top {
    bound: f64,
    first: Option<usize>,
    ties: usize,
    log_t: f64,
}

/// Models whose selection statistics [`UcbConfig::top`] keeps on the stack (beyond, it computes
/// them again): 16 × 24 bytes.
const STACKED: usize = 16;

/// `fraction` in [0, 1) scaled to an index below `n` (rounding cannot reach `n`).
fn scaled(fraction: f64, n: usize) -> usize {
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let k = (fraction * n as f64) as usize;
    k.min(n.saturating_sub(1))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    Tuned,
    Kl,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UcbConfig {
    pub exploration: f64,
    pub discount: f64,
    pub bound: Bound,
    /// Pseudo-feedbacks at the pooled mean of all contexts added to each model's statistics
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

/// Per model: discounted feedback count, reward sum and squared-reward sum.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UcbState {
    pub counts: Vec<f64>,
    pub sums: Vec<f64>,
    pub squares: Vec<f64>,
}

impl Models for UcbState {
    fn models(&self) -> usize {
        self.counts.len()
    }
}

impl UcbState {
    fn mean(&self, arm: usize) -> f64 {
        if self.counts[arm] > 0.0 {
            (self.sums[arm] / self.counts[arm]).clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
}

impl UcbConfig {
    /// `arm`'s count, reward sum and squared sum for selection: the context's own, plus `share`
    /// pseudo-feedbacks at the pooled mean when there is one.
    #[inline(always)]
    fn stats(&self, state: &UcbState, arm: usize, evidence: Option<&Evidence>) -> (f64, f64, f64) {
        let own = (state.counts[arm], state.sums[arm], state.squares[arm]);
        match evidence.and_then(|e| e.prior(arm, self.share)) {
            Some((w, m)) => (own.0 + w, own.1 + w * m, own.2 + w * m * m),
            None => own,
        }
    }

    /// The confidence interval of a model's mean reward from its statistics, given `ln t`.
    #[inline(always)]
    fn interval(&self, (n, sum, squares): (f64, f64, f64), log_t: f64) -> (f64, f64) {
        if n <= 0.0 {
            return (f64::NEG_INFINITY, f64::INFINITY);
        }
        let mean = (sum / n).clamp(0.0, 1.0);
        let budget = self.exploration * log_t;
        match self.bound {
            Bound::Tuned => {
                // The variance term is capped at 1/4, which its own confidence width reaches
                // alone when 2 ln t / n >= 1/16 (every model tried fewer than 32 ln t times): the
                // cap is then the term, without the variance's division and the square root
                // (exactly: the root of 1/16 is 1/4, rounding is monotone, the variance >= 0).
                let confidence = 2.0 * log_t / n;
                let variance = if confidence >= 0.0625 {
                    0.25
                } else {
                    ((squares / n - mean * mean).max(0.0) + confidence.sqrt()).min(0.25)
                };
                let width = (budget / n * variance).sqrt();
                (mean - width, mean + width)
            }
            Bound::Kl => (kl_bound(mean, budget / n, false), kl_bound(mean, budget / n, true)),
        }
    }

    #[inline(always)]
    fn upper(&self, stats: (f64, f64, f64), log_t: f64) -> f64 {
        match self.bound {
            // Only the upper bound: half the bisections.
            Bound::Kl if stats.0 > 0.0 => kl_bound(
                (stats.1 / stats.0).clamp(0.0, 1.0),
                self.exploration * log_t / stats.0,
                true,
            ),
            _ => self.interval(stats, log_t).1,
        }
    }

    /// The allowed models' highest upper bound: the first model reaching it, how many do, and
    /// `ln t`. No allocation: this runs on every decision. Each model's statistics are computed
    /// once (kept on the stack for the first [`STACKED`] models) and summed in model order, so
    /// the bits are those of computing them twice. The bounds of the stacked models are all
    /// computed before any is compared: each is a chain of divisions and square roots, and
    /// comparing as they come would stall on every one that leads to a mispredicted branch;
    /// computed first, the chains run side by side.
    fn top(&self, state: &UcbState, query: Query<'_>) -> Top {
        let models = state.counts.len();
        let mut stacked = [(0.0, 0.0, 0.0); STACKED];
        let mut t = 0.0;
        for arm in 0..models {
            let stats = self.stats(state, arm, query.evidence);
            if let Some(slot) = stacked.get_mut(arm) {
                *slot = stats;
            }
            t += stats.0;
        }
        let log_t = f64::max(t, 1.0).ln();
        let mut uppers = [0.0; STACKED];
        for (upper, &stats) in uppers.iter_mut().zip(&stacked).take(models) {
            *upper = self.upper(stats, log_t);
        }
        let mut top = Top {
            bound: f64::NEG_INFINITY,
            first: None,
            ties: 0,
            log_t,
        };
        for arm in (0..models).filter(|&arm| query.subset.contains(arm)) {
            let upper = match uppers.get(arm) {
                Some(&upper) => upper,
                None => self.upper(self.stats(state, arm, query.evidence), log_t),
            };
            if upper > top.bound {
                (top.bound, top.first, top.ties) = (upper, Some(arm), 0);
            }
            if upper == top.bound {
                top.ties += 1;
            }
        }
        top
    }

    /// [`UcbConfig::top`] as first written: each bound compared as soon as it is computed. What
    /// the bounds computed first must agree with, to the bit.
    #[cfg(test)]
    fn top_in_order(&self, state: &UcbState, query: Query<'_>) -> Top {
        let models = state.counts.len();
        let t: f64 = (0..models).map(|arm| self.stats(state, arm, query.evidence).0).sum();
        let log_t = f64::max(t, 1.0).ln();
        let mut top = Top {
            bound: f64::NEG_INFINITY,
            first: None,
            ties: 0,
            log_t,
        };
        for arm in (0..models).filter(|&arm| query.subset.contains(arm)) {
            let upper = self.upper(self.stats(state, arm, query.evidence), log_t);
            if upper > top.bound {
                (top.bound, top.first, top.ties) = (upper, Some(arm), 0);
            }
            if upper == top.bound {
                top.ties += 1;
            }
        }
        top
    }

    /// Whether `arm` is one of `top`'s leaders (the same computation, so the same bits).
    fn leads(&self, state: &UcbState, query: Query<'_>, top: &Top, arm: usize) -> bool {
        query.subset.contains(arm) && self.upper(self.stats(state, arm, query.evidence), top.log_t) == top.bound
    }

    /// The `k`-th of `top`'s leaders in model order.
    fn leader(&self, state: &UcbState, query: Query<'_>, top: &Top, k: usize) -> Option<usize> {
        if k == 0 {
            return top.first;
        }
        (0..state.counts.len())
            .filter(|&arm| self.leads(state, query, top, arm))
            .nth(k)
    }

    fn log_t(state: &UcbState) -> f64 {
        state.counts.iter().sum::<f64>().max(1.0).ln()
    }
}

/// The Bernoulli divergence kl(p, q), with the usual conventions at 0 and 1.
fn kl(p: f64, q: f64) -> f64 {
    let term = |a: f64, b: f64| if a <= 0.0 { 0.0 } else { a * (a / b).ln() };
    let q = q.clamp(1e-15, 1.0 - 1e-15);
    term(p, q) + term(1.0 - p, 1.0 - q)
}

/// The farthest `q` from `mean` (above it when `upper`) with `kl(mean, q) ≤ limit`, by bisection.
fn kl_bound(mean: f64, limit: f64, upper: bool) -> f64 {
    let (mut inside, mut outside) = if upper { (mean, 1.0) } else { (mean, 0.0) };
    if kl(mean, outside) <= limit {
        return outside;
    }
    while (outside - inside).abs() > 1e-6 {
        let middle = 0.5 * (inside + outside);
        if kl(mean, middle) <= limit {
            inside = middle;
        } else {
            outside = middle;
        }
    }
    inside
}

impl Algorithm for UcbConfig {
    type State = UcbState;

    fn validate(&self, _models: usize) -> Result<()> {
        if !(self.exploration.is_finite() && self.exploration > 0.0) {
            return Err(Error::parameter("exploration", self.exploration, "finite and > 0"));
        }
        if !(self.discount > 0.0 && self.discount <= 1.0) {
            return Err(Error::parameter("discount", self.discount, "in (0, 1]"));
        }
        if !(self.share.is_finite() && self.share >= 0.0) {
            return Err(Error::parameter(
                "share",
                self.share,
                "finite and >= 0 (pseudo-feedbacks)",
            ));
        }
        if let Some(detector) = &self.detect_changes {
            detector.validate()?;
        }
        check_floor(self.floor)
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
    fn initial_state(&self, models: usize, prior: Option<&[f64]>) -> Result<UcbState> {
        let Some(prior) = prior else {
            return Ok(UcbState {
                counts: vec![0.0; models],
                sums: vec![0.0; models],
                squares: vec![0.0; models],
            });
        };
        if let Some(bad) = prior.iter().find(|m| !(0.0..=1.0).contains(*m)) {
            return Err(Error::parameter("prior", bad, "mean rewards in [0, 1]"));
        }
        Ok(UcbState {
            counts: vec![1.0; models],
            sums: prior.to_vec(),
            squares: prior.iter().map(|m| m * m).collect(),
        })
    }

    fn select(&self, state: &UcbState, query: Query<'_>, rng: &mut Rng) -> Result<(usize, f64)> {
        let top = self.top(state, query);
        if top.ties == 0 {
            return Err(Error::NoEligibleModel);
        }
        #[allow(clippy::cast_precision_loss)]
        let tie_share = 1.0 / top.ties as f64;
        if self.floor > 0.0 {
            // One random number: below `floor` it picks uniformly among the allowed models,
            // above it among the leaders.
            let models = state.counts.len();
            let allowed = query.subset.count(models);
            let u = rng.next_f64();
            // A leader drawn as such leads; a uniform draw may have hit one too.
            let (arm, lead) = if u < self.floor {
                let arm = query
                    .subset
                    .nth(models, scaled(u / self.floor, allowed))
                    .ok_or(Error::NoEligibleModel)?;
                (arm, self.leads(state, query, &top, arm))
            } else {
                let k = scaled((u - self.floor) / (1.0 - self.floor), top.ties);
                (self.leader(state, query, &top, k).ok_or(Error::NoEligibleModel)?, true)
            };
            let lead = if lead { tie_share } else { 0.0 };
            #[allow(clippy::cast_precision_loss)]
            return Ok((arm, (1.0 - self.floor) * lead + self.floor / allowed as f64));
        }
        // A random number only when bounds tie (at the start, every untried model's is infinite).
        let k = if top.ties > 1 { rng.below(top.ties) } else { 0 };
        let arm = self.leader(state, query, &top, k).ok_or(Error::NoEligibleModel)?;
        Ok((arm, tie_share))
    }

    fn probabilities(&self, state: &UcbState, query: Query<'_>) -> Vec<f64> {
        let top = self.top(state, query);
        #[allow(clippy::cast_precision_loss)]
        let share = 1.0 / top.ties.max(1) as f64;
        let leaders = (0..state.counts.len())
            .map(|arm| {
                if self.leads(state, query, &top, arm) {
                    share
                } else {
                    0.0
                }
            })
            .collect();
        floored(leaders, query.subset, self.floor)
    }

    fn update(&self, state: &mut UcbState, event: Event) -> Option<usize> {
        if self.discount < 1.0 {
            for v in state.counts.iter_mut().chain(&mut state.sums).chain(&mut state.squares) {
                *v *= self.discount;
            }
        }
        state.counts[event.arm] += 1.0;
        state.sums[event.arm] += event.reward;
        state.squares[event.arm] += event.reward * event.reward;
        // Only a locking learner acts on convergence as it learns; the test (a ranking and
        // every model's interval) would otherwise cost about a quarter of a decision.
        if self.lock { self.converged(state) } else { None }
    }

    fn converged(&self, state: &UcbState) -> Option<usize> {
        let log_t = Self::log_t(state);
        let stats = |arm: usize| (state.counts[arm], state.sums[arm], state.squares[arm]);
        let leader = *self.ranking(state).first()?;
        let lower = self.interval(stats(leader), log_t).0;
        (0..state.counts.len())
            .filter(|&arm| arm != leader)
            .all(|arm| self.interval(stats(arm), log_t).1 < lower)
            .then_some(leader)
    }

    fn ranking(&self, state: &UcbState) -> Vec<usize> {
        let means: Vec<f64> = (0..state.counts.len()).map(|arm| state.mean(arm)).collect();
        rank_by(&means)
    }

    fn validate_state(&self, state: &UcbState, models: usize) -> Result<()> {
        let slack = 1e-9;
        let valid = state.counts.len() == models
            && state.sums.len() == models
            && state.squares.len() == models
            && (0..models).all(|arm| {
                let (n, s, q) = (state.counts[arm], state.sums[arm], state.squares[arm]);
                n.is_finite() && n >= 0.0 && (-slack..=n + slack).contains(&s) && (-slack..=s + slack).contains(&q)
            });
        if valid {
            Ok(())
        } else {
            Err(Error::snapshot(
                "UCB statistics must be counts n >= 0 with reward sums in [0, n] and squared sums in [0, sum], one per model",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subset::Subset;

    fn config(bound: Bound) -> UcbConfig {
        UcbConfig {
            exploration: 1.0,
            discount: 1.0,
            bound,
            share: 0.0,
            floor: 0.0,
            detect_changes: None,
            lock: false,
        }
    }

    fn event(arm: usize, reward: f64) -> Event {
        Event {
            arm,
            reward,
            propensity: 1.0,
            count: 1,
        }
    }

    #[test]
    fn shared_evidence_starts_a_new_context_from_the_pool() {
        let c = UcbConfig {
            share: 10.0,
            ..config(Bound::Tuned)
        };
        let fresh = c.initial_state(3, None).unwrap();
        let mut evidence = Evidence::new(3);
        for _ in 0..50 {
            evidence.record(0, 0.1, 1.0);
            evidence.record(1, 0.9, 1.0);
            evidence.record(2, 0.5, 1.0);
        }
        let query = Query::pooled(Subset::ALL, &evidence);
        // No own feedback, yet the pool's best model leads; alone, all three would tie.
        assert_eq!(c.select(&fresh, query, &mut Rng::seed_from_u64(0)).unwrap(), (1, 1.0));
        assert_eq!(config(Bound::Tuned).probabilities(&fresh, query), vec![1.0 / 3.0; 3]);
    }

    #[test]
    fn a_shared_prior_weighs_no_more_than_the_feedback_it_rests_on() {
        let c = UcbConfig {
            share: 5.0,
            ..config(Bound::Tuned)
        };
        let fresh = c.initial_state(2, None).unwrap();
        let mut evidence = Evidence::new(2);
        // Model 0's one pooled answer was wrong; model 1 has 100 at 0.6.
        evidence.record(0, 0.0, 1.0);
        for _ in 0..100 {
            evidence.record(1, 0.6, 1.0);
        }
        assert_eq!(
            c.stats(&fresh, 0, Some(&evidence)),
            (1.0, 0.0, 0.0),
            "one failure, not five"
        );
        let (n, s, _) = c.stats(&fresh, 1, Some(&evidence));
        assert!(
            (n - 5.0).abs() < 1e-12 && (s - 3.0).abs() < 1e-9,
            "capped at share: {n} {s}"
        );
        // So the model is retried once the confidence budget grows: with a count of 1 its
        // bound, sqrt(c ln t / 4), keeps growing while the other's width shrinks.
        let mut state = fresh;
        let mut rng = Rng::seed_from_u64(0);
        let query = Query::pooled(Subset::ALL, &evidence);
        let retried = (0..200).any(|_| {
            let (arm, _) = c.select(&state, query, &mut rng).unwrap();
            c.update(&mut state, event(arm, 0.6));
            arm == 0
        });
        assert!(retried);
    }

    #[test]
    fn the_floor_spreads_its_share_over_the_allowed_models_and_reports_it() {
        let c = UcbConfig {
            floor: 0.1,
            ..config(Bound::Tuned)
        };
        let mut s = c.initial_state(4, None).unwrap();
        for (arm, reward) in [(0, 0.2), (1, 0.9), (2, 0.5), (3, 0.4)] {
            c.update(&mut s, event(arm, reward));
        }
        let mask = [true, true, false, true];
        let query = Query::over(Subset(Some(&mask)));
        let p = c.probabilities(&s, query);
        // The leader gets 0.9 + 0.1/3; the other allowed models 0.1/3 each; the excluded none.
        let third = 0.1 / 3.0;
        assert!((p[1] - (0.9 + third)).abs() < 1e-12 && p[2] == 0.0, "{p:?}");
        assert!((p[0] - third).abs() < 1e-12 && (p[3] - third).abs() < 1e-12, "{p:?}");
        let mut rng = Rng::seed_from_u64(5);
        let mut picks = [0u32; 4];
        for _ in 0..30_000 {
            let (arm, probability) = c.select(&s, query, &mut rng).unwrap();
            assert_eq!(probability, p[arm]);
            picks[arm] += 1;
        }
        // Binomial(30000, 1/30): mean 1000, sd 31; 1000 +- 200 is over 6 sd.
        for arm in [0, 3] {
            assert!((800..=1200).contains(&picks[arm]), "{picks:?}");
        }
        assert_eq!(picks[2], 0);
    }

    #[test]
    fn tries_every_model_first_then_the_best() {
        for bound in [Bound::Tuned, Bound::Kl] {
            let c = config(bound);
            let mut s = c.initial_state(3, None).unwrap();
            let mut rng = Rng::seed_from_u64(0);
            let all = Query::over(Subset::ALL);
            let mut tried = Vec::new();
            for untried in (1..=3).rev() {
                let (arm, p) = c.select(&s, all, &mut rng).unwrap();
                assert!(!tried.contains(&arm));
                assert_eq!(p, 1.0 / f64::from(untried));
                tried.push(arm);
                c.update(&mut s, event(arm, [0.2, 0.9, 0.5][arm]));
            }
            assert_eq!(c.select(&s, all, &mut rng).unwrap().0, 1);
            let mask = [true, false, true];
            assert_eq!(c.select(&s, Query::over(Subset(Some(&mask))), &mut rng).unwrap().0, 2);
        }
    }

    #[test]
    fn kl_bound_solves_the_divergence_equation() {
        let upper = kl_bound(0.3, 0.1, true);
        assert!((kl(0.3, upper) - 0.1).abs() < 1e-5 && upper > 0.3);
        let lower = kl_bound(0.3, 0.1, false);
        assert!((kl(0.3, lower) - 0.1).abs() < 1e-5 && lower < 0.3);
        assert_eq!(kl_bound(0.5, 20.0, true), 1.0);
    }

    #[test]
    fn converges_once_the_bounds_separate() {
        let c = config(Bound::Tuned);
        let mut s = c.initial_state(2, None).unwrap();
        c.update(&mut s, event(0, 0.6));
        c.update(&mut s, event(1, 0.4));
        assert_eq!(c.converged(&s), None, "0.6 against 0.4 once each proves nothing");
        for _ in 0..200 {
            c.update(&mut s, event(0, 0.6));
            c.update(&mut s, event(1, 0.4));
        }
        // Widths sqrt(ln 402 / 201 · V), V = sqrt(2 ln 402 / 201) = 0.244: 0.085 around 0.6 and 0.4.
        assert_eq!(c.converged(&s), Some(0));
    }

    #[test]
    fn discount_shrinks_the_evidence() {
        let c = UcbConfig {
            discount: 0.5,
            ..config(Bound::Tuned)
        };
        let mut s = c.initial_state(2, None).unwrap();
        c.update(&mut s, event(0, 1.0));
        c.update(&mut s, event(1, 0.5));
        assert_eq!(s.counts, vec![0.5, 1.0]);
        assert_eq!(s.sums, vec![0.5, 0.5]);
    }

    #[test]
    fn bad_configs_name_the_field() {
        for (c, field) in [
            (
                UcbConfig {
                    exploration: 0.0,
                    ..config(Bound::Kl)
                },
                "exploration",
            ),
            (
                UcbConfig {
                    discount: 0.0,
                    ..config(Bound::Kl)
                },
                "discount",
            ),
        ] {
            assert!(Algorithm::validate(&c, 3).unwrap_err().to_string().starts_with(field));
        }
    }

    proptest::proptest! {
        /// Computing every stacked model's bound before comparing any changes nothing: the same
        /// bound bits, first leader, ties and `ln t` as comparing each as it comes, for both
        /// bounds, with and without pooled evidence, subsets, untried models, ties, and more
        /// models than are stacked.
        #[test]
        fn bounds_computed_first_change_nothing(
            stats in proptest::collection::vec((0u32..40, 0.0..=1.0f64, 0.0..=1.0f64, 0u32..200, 0.0..=1.0f64, proptest::prelude::any::<bool>()), 1..24),
            kl in proptest::prelude::any::<bool>(),
            share in proptest::prop_oneof![proptest::strategy::Just(0.0), 0.0..20.0f64],
            exploration in 0.1..3.0f64,
        ) {
            let c = UcbConfig {
                exploration,
                share,
                ..config(if kl { Bound::Kl } else { Bound::Tuned })
            };
            // Rewards in [0, 1]: a sum `mean · n`, squares between `sum²/n` and `sum`.
            let mut state = c.initial_state(stats.len(), None).unwrap();
            let mut evidence = Evidence::new(stats.len());
            for (arm, &(n, mean, spread, pooled, pooled_mean, _)) in stats.iter().enumerate() {
                let (n, pooled) = (f64::from(n), f64::from(pooled));
                let sum = (mean * n).round().min(n);
                state.counts[arm] = n;
                state.sums[arm] = sum;
                state.squares[arm] = if n > 0.0 { sum * sum / n + spread * (sum - sum * sum / n) } else { 0.0 };
                evidence.counts[arm] = pooled;
                evidence.sums[arm] = pooled_mean * pooled;
            }
            let mask: Vec<bool> = stats.iter().map(|s| s.5).collect();
            for subset in [Subset::ALL, Subset(Some(&mask))] {
                for query in [Query::over(subset), Query::pooled(subset, &evidence)] {
                    let (x, y) = (c.top(&state, query), c.top_in_order(&state, query));
                    proptest::prop_assert_eq!(
                        (x.bound.to_bits(), x.first, x.ties, x.log_t.to_bits()),
                        (y.bound.to_bits(), y.first, y.ties, y.log_t.to_bits())
                    );
                }
            }
        }
    }

    proptest::proptest! {
        /// UCB1-tuned's shortcut for a capped variance term gives the full formula's bits.
        #[test]
        fn the_capped_variance_shortcut_is_exact(
            confidence in proptest::prop_oneof![0.0..0.2f64, 0.055..0.07f64, 0.0..100.0f64],
            mean in 0.0..=1.0f64,
            spread in proptest::prop_oneof![0.0..0.1f64, 0.0..=1.0f64],
            t in 1.5..1e7f64,
            exploration in 0.01..4.0f64,
        ) {
            // `n` from the confidence term 2 ln t / n it gives, near the cap's 1/16 or not.
            let c = UcbConfig { exploration, ..config(Bound::Tuned) };
            let log_t = t.ln();
            let n = 2.0 * log_t / confidence.max(1e-9);
            let sum = mean * n;
            let squares = sum * sum / n + spread * (sum - sum * sum / n);
            let full = {
                let mean = (sum / n).clamp(0.0, 1.0);
                let variance = (squares / n - mean * mean).max(0.0) + (2.0 * log_t / n).sqrt();
                let width = (exploration * log_t / n * variance.min(0.25)).sqrt();
                (mean - width, mean + width)
            };
            let got = c.interval((n, sum, squares), log_t);
            proptest::prop_assert_eq!((got.0.to_bits(), got.1.to_bits()), (full.0.to_bits(), full.1.to_bits()));
        }
    }
}
