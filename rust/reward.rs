//! The reward: one number in [0, 1] from a query's accuracy, cost and latency.
//!
//! Two forms (see docs/design.md):
//!
//! * **Linear, normalized** (default):
//!   `r = (w_a·a − w_c·min(c/c_max, 1) − w_l·min(l/l_max, 1) + w_c + w_l) / (w_a + w_c + w_l)`.
//!   Each term lies in [0, w], so r lies in [0, 1]; a perfect, free, instant answer scores 1.
//! * **The paper's form**, `R = (w_a·a − w_c·c) / (w_l·log10(l_ms) / t_scaling)`, with the
//!   safeguards it needs to be usable: latency in milliseconds floored at `latency_floor_ms` > 1
//!   (so the log is positive and finite), the numerator clamped at 0 (so a slower model can never
//!   score better), and R divided by a fixed declared maximum and clamped into [0, 1]. By default
//!   that maximum is R at a = 1, c = 0 and the floor latency, the largest value R can take.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What one query produced. Validated by [`Observation::new`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Observation {
    pub accuracy: f64,
    pub cost: f64,
    pub latency: f64,
}

impl Observation {
    /// Accuracy in [0, 1]; cost (USD) and latency (seconds) finite and non-negative.
    pub fn new(accuracy: f64, cost: f64, latency: f64) -> Result<Self> {
        let check = |field, value: f64, ok: bool, expected| {
            if ok {
                Ok(())
            } else {
                Err(Error::InvalidObservation { field, value, expected })
            }
        };
        check(
            "accuracy",
            accuracy,
            (0.0..=1.0).contains(&accuracy),
            "a number in [0, 1]",
        )?;
        check(
            "cost",
            cost,
            cost.is_finite() && cost >= 0.0,
            "a finite, non-negative number",
        )?;
        check(
            "latency",
            latency,
            latency.is_finite() && latency >= 0.0,
            "a finite, non-negative number",
        )?;
        Ok(Observation {
            accuracy,
            cost,
            latency,
        })
    }
}

/// Which formula turns an observation into a reward.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RewardForm {
    Linear,
    Paper {
        time_scaling: f64,
        latency_floor_ms: f64,
        /// The R that maps to 1; `None` means the largest R possible (see the module docs).
        max_value: Option<f64>,
    },
}

/// Weights and scales of the reward. Build with [`Reward::new`] or validate with
/// [`Reward::validate`]; `compute` trusts a validated value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reward {
    pub accuracy: f64,
    pub cost: f64,
    pub latency: f64,
    pub max_cost: f64,
    pub max_latency: f64,
    pub form: RewardForm,
}

impl Default for Reward {
    /// Accuracy counts twice as much as cost and latency together; a query is "expensive" at
    /// 1 cent and "slow" at 10 seconds.
    fn default() -> Self {
        Reward {
            accuracy: 1.0,
            cost: 0.5,
            latency: 0.5,
            max_cost: 0.01,
            max_latency: 10.0,
            form: RewardForm::Linear,
        }
    }
}

fn weight(field: &str, value: f64) -> Result<()> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(Error::parameter(
            format!("reward.{field}"),
            value,
            "a finite, non-negative weight",
        ))
    }
}

fn positive(field: &str, value: f64) -> Result<()> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(Error::parameter(
            format!("reward.{field}"),
            value,
            "a finite number > 0",
        ))
    }
}

impl Reward {
    /// Validated construction of the linear form.
    ///
    /// ```
    /// use _core::reward::{Observation, Reward, RewardForm};
    /// let reward = Reward::new(1.0, 0.5, 0.5, 0.01, 10.0, RewardForm::Linear).unwrap();
    /// let perfect = Observation::new(1.0, 0.0, 0.0).unwrap();
    /// assert_eq!(reward.compute(perfect), 1.0);
    /// ```
    pub fn new(
        accuracy: f64,
        cost: f64,
        latency: f64,
        max_cost: f64,
        max_latency: f64,
        form: RewardForm,
    ) -> Result<Self> {
        let reward = Reward {
            accuracy,
            cost,
            latency,
            max_cost,
            max_latency,
            form,
        };
        reward.validate()?;
        Ok(reward)
    }

    /// Weights finite and non-negative, not all zero; scales finite and positive.
    pub fn validate(&self) -> Result<()> {
        weight("accuracy", self.accuracy)?;
        weight("cost", self.cost)?;
        weight("latency", self.latency)?;
        let total = self.accuracy + self.cost + self.latency;
        if total <= 0.0 {
            return Err(Error::parameter("reward weights", "all zero", "not all zero"));
        }
        if !total.is_finite() {
            // Each weight finite but their sum overflowing would make every reward NaN.
            return Err(Error::parameter("reward weights", "a sum beyond f64", "a finite sum"));
        }
        positive("max_cost", self.max_cost)?;
        positive("max_latency", self.max_latency)?;
        if let RewardForm::Paper {
            time_scaling,
            latency_floor_ms,
            max_value,
        } = self.form
        {
            if self.latency <= 0.0 {
                return Err(Error::parameter(
                    "reward.latency",
                    self.latency,
                    "> 0 in the paper's form, where it divides",
                ));
            }
            if self.accuracy <= 0.0 {
                return Err(Error::parameter(
                    "reward.accuracy",
                    self.accuracy,
                    "> 0 in the paper's form, whose numerator is clamped at 0",
                ));
            }
            positive("time_scaling", time_scaling)?;
            if !(latency_floor_ms.is_finite() && latency_floor_ms > 1.0) {
                return Err(Error::parameter(
                    "reward.latency_floor_ms",
                    latency_floor_ms,
                    "a finite number > 1 (log10 of the floor must be positive)",
                ));
            }
            if let Some(max_value) = max_value {
                positive("max_value", max_value)?;
            }
            // The default top of the range, R at a = 1, c = 0 and the floor latency, must be
            // a usable divisor too.
            let top = self.accuracy / (self.latency * libm::log10(latency_floor_ms) / time_scaling);
            if !(top.is_finite() && top > 0.0) {
                return Err(Error::parameter(
                    "reward weights",
                    "extreme values",
                    "weights and scales whose paper-form maximum is a finite, positive number",
                ));
            }
        }
        Ok(())
    }

    /// The reward in [0, 1] for a validated observation.
    #[must_use]
    pub fn compute(&self, obs: Observation) -> f64 {
        let r = match self.form {
            RewardForm::Linear => {
                let cost_term = (obs.cost / self.max_cost).min(1.0);
                let latency_term = (obs.latency / self.max_latency).min(1.0);
                (self.accuracy * obs.accuracy - self.cost * cost_term - self.latency * latency_term
                    + self.cost
                    + self.latency)
                    / (self.accuracy + self.cost + self.latency)
            }
            RewardForm::Paper {
                time_scaling,
                latency_floor_ms,
                max_value,
            } => {
                // The rewards are learned state: log10 from the pure-Rust `libm`, the same bits
                // on every platform (docs/design.md, "Arithmetic across platforms").
                let paper = |accuracy: f64, cost: f64, latency_ms: f64| {
                    let numerator = (self.accuracy * accuracy - self.cost * cost).max(0.0);
                    numerator / (self.latency * libm::log10(latency_ms.max(latency_floor_ms)) / time_scaling)
                };
                let top = max_value.unwrap_or_else(|| paper(1.0, 0.0, latency_floor_ms));
                paper(obs.accuracy, obs.cost, obs.latency * 1000.0) / top
            }
        };
        // Rounding can step a hair outside [0, 1]; the learners rely on the bounds.
        r.clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn obs(a: f64, c: f64, l: f64) -> Observation {
        Observation::new(a, c, l).unwrap()
    }

    fn paper(max_value: Option<f64>) -> Reward {
        let form = RewardForm::Paper {
            time_scaling: 1.0,
            latency_floor_ms: 10.0,
            max_value,
        };
        Reward::new(1.0, 1.0, 1.0, 1.0, 1.0, form).unwrap()
    }

    #[test]
    fn linear_end_points_and_a_midpoint() {
        let r = Reward::default();
        assert_eq!(r.compute(obs(1.0, 0.0, 0.0)), 1.0);
        assert_eq!(r.compute(obs(0.0, 0.01, 10.0)), 0.0);
        // Past the scales the penalty saturates.
        assert_eq!(r.compute(obs(0.0, 5.0, 100.0)), 0.0);
        // a = 1, half the cost scale, no latency: (1 - 0.25 + 1) / 2.
        assert!((r.compute(obs(1.0, 0.005, 0.0)) - 0.875).abs() < 1e-12);
    }

    #[test]
    fn paper_form_safeguards() {
        let r = paper(None);
        // At the floor latency, perfect and free: the top of the range.
        assert!((r.compute(obs(1.0, 0.0, 0.0)) - 1.0).abs() < 1e-12);
        // Sub-floor latencies (where log10 would be <= 0) are floored, not inverted.
        assert_eq!(r.compute(obs(1.0, 0.0, 0.0005)), r.compute(obs(1.0, 0.0, 0.0)));
        // Slower is worse, never better, even with a negative numerator before clamping.
        assert!(r.compute(obs(1.0, 0.0, 2.0)) < r.compute(obs(1.0, 0.0, 0.5)));
        assert_eq!(r.compute(obs(0.0, 0.5, 2.0)), 0.0);
        assert_eq!(r.compute(obs(0.0, 0.5, 0.02)), 0.0);
        // 1 s = 1000 ms: log10 = 3 against log10(10) = 1 at the top.
        assert!((r.compute(obs(1.0, 0.0, 1.0)) - 1.0 / 3.0).abs() < 1e-12);
        // A declared range clamps above.
        assert_eq!(paper(Some(0.1)).compute(obs(1.0, 0.0, 1.0)), 1.0);
    }

    /// The paper form's rewards are learned state, so its `log10` is `libm`'s, pinned here to
    /// the bit: each logarithm is the correctly rounded value, and so is the reward built from
    /// it (both checked with mpmath at 200 bits).
    #[test]
    fn paper_form_arithmetic_is_pinned_to_the_bit() {
        let pinned = [
            (libm::log10(2.0), 0x3FD3_4413_509F_79FF_u64),
            (libm::log10(1234.5), 0x4008_BB5F_AECE_0C80),
            (libm::log10(873.25), 0x4007_8773_ABDC_820F),
            (paper(None).compute(obs(0.9, 0.01, 0.873_25)), 0x3FD3_5DDC_BC38_9B0E),
        ];
        for (value, bits) in pinned {
            assert_eq!(value.to_bits(), bits, "{value:e}: {:#018X}", value.to_bits());
        }
    }

    #[test]
    fn invalid_configuration_names_the_field() {
        let bad = [
            (
                Reward {
                    accuracy: f64::NAN,
                    ..Reward::default()
                },
                "reward.accuracy",
            ),
            (
                Reward {
                    cost: -1.0,
                    ..Reward::default()
                },
                "reward.cost",
            ),
            (
                Reward {
                    accuracy: 0.0,
                    cost: 0.0,
                    latency: 0.0,
                    ..Reward::default()
                },
                "reward weights",
            ),
            (
                Reward {
                    max_cost: 0.0,
                    ..Reward::default()
                },
                "reward.max_cost",
            ),
            (
                Reward {
                    max_latency: f64::INFINITY,
                    ..Reward::default()
                },
                "reward.max_latency",
            ),
            (
                Reward {
                    latency: 0.0,
                    form: RewardForm::Paper {
                        time_scaling: 1.0,
                        latency_floor_ms: 10.0,
                        max_value: None,
                    },
                    ..Reward::default()
                },
                "reward.latency",
            ),
            (
                Reward {
                    form: RewardForm::Paper {
                        time_scaling: 1.0,
                        latency_floor_ms: 1.0,
                        max_value: None,
                    },
                    ..Reward::default()
                },
                "reward.latency_floor_ms",
            ),
        ];
        for (reward, field) in bad {
            let message = reward.validate().unwrap_err().to_string();
            assert!(message.starts_with(field), "{message}");
        }
    }

    #[test]
    fn invalid_observations_are_rejected() {
        for (a, c, l) in [
            (f64::NAN, 0.0, 0.0),
            (1.5, 0.0, 0.0),
            (-0.1, 0.0, 0.0),
            (1.0, -1.0, 0.0),
            (1.0, 0.0, f64::INFINITY),
        ] {
            assert!(Observation::new(a, c, l).is_err());
        }
    }

    proptest! {
        #[test]
        fn reward_is_in_unit_interval(
            wa in 0.0..10.0f64, wc in 0.0..10.0f64, wl in 0.001..10.0f64,
            a in 0.0..=1.0f64, c in 0.0..100.0f64, l in 0.0..1000.0f64,
            paper_form in any::<bool>(),
        ) {
            let form = if paper_form {
                RewardForm::Paper { time_scaling: 1.0, latency_floor_ms: 2.0, max_value: None }
            } else {
                RewardForm::Linear
            };
            let wa = if paper_form { wa + 0.001 } else { wa };
            let reward = Reward::new(wa, wc, wl, 0.01, 10.0, form).unwrap();
            let r = reward.compute(obs(a, c, l));
            prop_assert!((0.0..=1.0).contains(&r));
        }

        #[test]
        fn linear_reward_is_monotone(a in 0.0..=0.9f64, c in 0.0..0.02f64, l in 0.0..20.0f64) {
            let r = Reward::default();
            prop_assert!(r.compute(obs(a + 0.1, c, l)) >= r.compute(obs(a, c, l)));
            prop_assert!(r.compute(obs(a, c + 0.001, l)) <= r.compute(obs(a, c, l)));
            prop_assert!(r.compute(obs(a, c, l + 0.5)) <= r.compute(obs(a, c, l)));
        }
    }
}
