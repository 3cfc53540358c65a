//! # pickllm core
//!
//! The learning engine of pickllm: route each query to one model of a pool, observe its
//! accuracy, cost and latency, and learn online, per context, which model earns the best
//! weighted reward (PickLLM, arXiv 2412.12170). The paper's two learners (a learning automaton
//! updated by linear reward-inaction, stateless epsilon-greedy Q-learning) and UCB, Thompson
//! sampling and Exp3, one file each in `learners/` behind the `learner::Algorithm` trait.
//!
//! This crate knows nothing of Python; `python/` (behind the `python` feature) is the only code
//! that does. Models are dense indices here, their names live in [`router::Config`].
//!
//! ```
//! use _core::learner::Policy;
//! use _core::q_learning::{QConfig, StepSize};
//! use _core::reward::{Observation, Reward};
//! use _core::router::{Config, Router};
//! use _core::subset::Subset;
//!
//! let policy = Policy::QLearning(QConfig {
//!     learning_rate: StepSize::Constant(0.1), epsilon: 0.2, epsilon_decay: 0.99,
//!     epsilon_min: 0.01, patience: 50, share: 0.0, lock: true,
//! });
//! let config = Config {
//!     models: vec!["gpt-4o".into(), "mistral-7b".into()], policy, reward: Reward::default(),
//!     prior: None, max_pending: 10_000, default_context: "default".into(), max_contexts: None,
//! };
//! let mut router = Router::new(config, 7).unwrap();
//! let d = router.select(Some("finance"), Subset::ALL).unwrap();
//! let model = router.config().models[d.arm].clone();
//! router.feedback(d.id, &model, "finance", Observation::new(1.0, 0.002, 0.8).unwrap()).unwrap();
//! assert_eq!(router.feedback_counts("finance").iter().sum::<u64>(), 1);
//! ```

pub mod chunked;
pub mod contexts;
pub mod decisions;
pub mod error;
pub mod events;
pub mod identity;
pub mod learned;
pub mod learner;
pub mod learners;
pub mod outbox;
pub mod prompt_contexts;
pub mod prompt_features;
pub mod replay;
pub mod reward;
pub mod rng;
pub mod router;
pub mod snapshot;
pub mod subset;

// The paper's learners keep their original paths.
pub use learners::{automaton, q_learning};

#[cfg(feature = "python")]
mod python;
