"""`Router`: the object users meet. It picks a model per query and learns from feedback."""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pickllm import _core
from pickllm._core import Decision
from pickllm.config import LearningAutomaton, Policy, QLearning, Reward, policy_from_core
from pickllm.errors import ArgumentTypeError, ConfigError, UnknownModelError

__all__ = ["Router"]

_SEED_LIMIT = 2**64


def _restore(blob: bytes) -> Router:
    """Module-level so that pickle can name it."""
    return Router.restore(blob)


class Router:
    """Routes each query to one model of a pool and learns, per context, which model is best.

    Selection and learning are split so that a gateway can serve many queries at once:
    :meth:`select` returns a :class:`Decision`, and :meth:`feedback` later applies what that
    query cost, how long it took and how good the answer was. Each context (a topic, a tenant,
    a task type) has its own learner, created on first use.

    Args:
        models: the pool, as unique model names.
        policy: the learner every context runs (default: ``LearningAutomaton()``).
        reward: how accuracy, cost and latency combine (default: ``Reward()``).
        seed: fixes every random choice; the same seed and the same feedback give the same
            decisions on every platform. ``None`` draws a random seed.
        prior: a starting point for new contexts, one value per model: relative selection
            weights (> 0) for the automaton, initial values in [0, 1] for Q-learning.
        max_pending: a decision can still receive feedback until this many newer decisions
            have been issued; older ones expire, so unanswered decisions cost bounded memory.
        default_context: the context of selections that name none.

    >>> router = Router(["gpt-4o", "mistral-7b"], seed=7)
    >>> d = router.select(context="finance")
    >>> d.model in router.models
    True
    >>> 0.0 <= router.feedback(d, accuracy=1.0, cost=0.002, latency=1.3) <= 1.0
    True
    """

    __slots__ = ("_core", "_default_context", "_models", "_policy", "_reward")

    def __init__(
        self,
        models: Sequence[str],
        *,
        policy: Policy | None = None,
        reward: Reward | None = None,
        seed: int | None = None,
        prior: Mapping[str, float] | None = None,
        max_pending: int = 100_000,
        default_context: str = "default",
    ) -> None:
        names = _model_names(models)
        policy = LearningAutomaton() if policy is None else policy
        reward = Reward() if reward is None else reward
        if not isinstance(policy, LearningAutomaton | QLearning):
            raise ArgumentTypeError(
                f"policy must be LearningAutomaton(...) or QLearning(...), got {policy!r}"
            )
        if not isinstance(reward, Reward):
            raise ArgumentTypeError(f"reward must be a Reward, got {reward!r}")
        if seed is None:
            seed = secrets.randbits(64)
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < _SEED_LIMIT:
            raise ConfigError(f"seed must be an integer in [0, 2**64), got {seed!r}")
        if isinstance(max_pending, bool) or not isinstance(max_pending, int) or max_pending < 1:
            raise ConfigError(f"max_pending must be an integer >= 1, got {max_pending!r}")
        if not isinstance(default_context, str):
            raise ConfigError(f"default_context must be a str, got {default_context!r}")
        config = {
            "models": names,
            "policy": policy._core_dict(),
            "reward": reward._core_dict(),
            "prior": _prior_values(prior, names),
            "max_pending": max_pending,
            "default_context": default_context,
        }
        self._core = _core.RouterCore(json.dumps(config), seed)
        self._models = tuple(names)
        self._default_context = default_context
        self._policy: Policy = policy
        self._reward = reward

    # ==================== Routing ====================

    def select(
        self,
        context: str | None = None,
        *,
        exclude: Iterable[str] | None = None,
        allowed: Iterable[str] | None = None,
    ) -> Decision:
        """Pick a model for one query in ``context`` (the default context when None).

        ``allowed`` restricts the choice to some models and ``exclude`` removes some (both may be
        given); the learner's probabilities are renormalized over what remains. The returned
        decision records the model, the probability it was chosen with, an id and the context.
        """
        return self._core.select(context, exclude, allowed)

    def feedback(
        self, decision: Decision, *, accuracy: float, cost: float = 0.0, latency: float = 0.0
    ) -> float:
        """Apply what a decision's query produced; returns the reward used, in [0, 1].

        ``accuracy`` in [0, 1] (from a scorer or a person), ``cost`` in USD and ``latency`` in
        seconds, both finite and non-negative. Each decision takes feedback once; a rejected
        call changes nothing.
        """
        return self._core.feedback(decision, accuracy, cost, latency)

    # ==================== Inspection ====================

    @property
    def models(self) -> tuple[str, ...]:
        """The pool, in the order given."""
        return self._models

    @property
    def policy(self) -> Policy:
        return self._policy

    @property
    def reward(self) -> Reward:
        return self._reward

    def probabilities(self, context: str | None = None) -> dict[str, float]:
        """The distribution :meth:`select` draws from in ``context`` (a fresh one if unseen)."""
        return dict(
            zip(self._models, self._core.probabilities(self._context(context)), strict=True)
        )

    def converged(self, context: str | None = None) -> str | None:
        """The model ``context`` has converged to, or None."""
        return self._core.converged(self._context(context))

    def feedback_counts(self, context: str | None = None) -> dict[str, int]:
        """How many feedbacks each model has received in ``context``."""
        counts = self._core.feedback_counts(self._context(context))
        return dict(zip(self._models, counts, strict=True))

    def contexts(self) -> list[str]:
        """Every context seen so far, in order of first use."""
        return self._core.contexts()

    @property
    def pending(self) -> int:
        """How many decisions still await feedback."""
        return self._core.pending()

    def _context(self, context: str | None) -> str:
        if context is None:
            return self._default_context
        if not isinstance(context, str):
            raise ArgumentTypeError(f"context must be a str, got {type(context).__name__}")
        return context

    # ==================== Persistence ====================

    def snapshot(self) -> bytes:
        """Everything the router knows as versioned bytes: configuration, every context's
        learner, the random generator's state and the pending decisions."""
        return self._core.snapshot()

    @classmethod
    def restore(cls, blob: bytes | bytearray | memoryview) -> Router:
        """The router :meth:`snapshot` saved, identical in every future decision.

        Raises SnapshotError when the bytes are truncated, altered, of a newer format or
        otherwise invalid; nothing half-restored is ever returned.
        """
        if not isinstance(blob, bytes | bytearray | memoryview):
            raise ArgumentTypeError(f"blob must be bytes, got {type(blob).__name__}")
        return cls._from_core(_core.RouterCore.restore(bytes(blob)))

    @classmethod
    def _from_core(cls, core: _core.RouterCore) -> Router:
        config = json.loads(core.config_json())
        router = cls.__new__(cls)
        router._core = core
        router._models = tuple(config["models"])
        router._default_context = config["default_context"]
        router._policy = policy_from_core(config["policy"])
        router._reward = Reward._from_core(config["reward"])
        return router

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        return (_restore, (self.snapshot(),))

    def __repr__(self) -> str:
        return (
            f"Router(models={list(self._models)!r}, policy={self._policy!r}, "
            f"contexts={len(self.contexts())}, pending={self.pending})"
        )


def _model_names(models: Sequence[str]) -> list[str]:
    if isinstance(models, str) or not isinstance(models, Sequence):
        raise ConfigError(f"models must be a list of model names, got {models!r}")
    for name in models:
        if not isinstance(name, str):
            raise ConfigError(f"models must hold model names (str), got {name!r}")
    return list(models)


def _prior_values(prior: Mapping[str, float] | None, names: list[str]) -> list[float] | None:
    if prior is None:
        return None
    if not isinstance(prior, Mapping):
        raise ConfigError(f"prior must map model names to numbers, got {prior!r}")
    unknown = [name for name in prior if name not in names]
    if unknown:
        raise UnknownModelError(f"prior names models not in the pool: {unknown!r}")
    missing = [name for name in names if name not in prior]
    if missing:
        raise ConfigError(f"prior must give a value for every model; missing {missing!r}")
    values = []
    for name in names:
        value = prior[name]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ConfigError(f"prior[{name!r}] must be a finite number, got {value!r}")
        values.append(float(value))
    return values
