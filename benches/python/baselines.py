"""Baselines that pickllm is measured against, in the same run (see docs/performance.md).

Each one does the whole job of a routing decision, as pickllm does it, so that the ratios compare
like with like:

- ``select`` returns a decision (id, model, probability, context), recorded as pending; pending
  decisions expire after ``max_pending`` newer ones;
- ``feedback`` checks the observation (accuracy in [0, 1], cost and latency finite and
  non-negative), checks the decision (issued, not used, same model and context), computes the
  linear normalized reward of docs/design.md and applies the learner's update.

The maths is that of docs/design.md: the learning automaton by linear reward-inaction with the
"others scaled, the chosen one takes the remainder" update and lock-in at ``max(p) >= threshold``;
epsilon-greedy Q-learning with a constant step, exact logged probabilities, decay per feedback and
the greedy-streak convergence rule. Each is written as a reasonable Python programmer would write
it for speed (list comprehensions and builtins, no per-element interpreter loops where a builtin
does the job), so the ratios are not against a straw man.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

import numpy as np


class Decision:
    """What ``select`` returns: id, model, the probability it was chosen with, context."""

    __slots__ = ("context", "id", "model", "probability")

    def __init__(self, id: int, model: str, probability: float, context: str) -> None:
        self.id = id
        self.model = model
        self.probability = probability
        self.context = context


def linear_reward(
    accuracy: float,
    cost: float,
    latency: float,
    weights: tuple[float, float, float] = (1.0, 0.5, 0.5),
    max_cost: float = 0.01,
    max_latency: float = 10.0,
) -> float:
    """The default reward of docs/design.md, after checking the observation."""
    if not 0.0 <= accuracy <= 1.0:
        raise ValueError(f"accuracy must be in [0, 1], got {accuracy!r}")
    if not (math.isfinite(cost) and cost >= 0.0):
        raise ValueError(f"cost must be finite and non-negative, got {cost!r}")
    if not (math.isfinite(latency) and latency >= 0.0):
        raise ValueError(f"latency must be finite and non-negative, got {latency!r}")
    w_a, w_c, w_l = weights
    r = (
        w_a * accuracy
        - w_c * min(cost / max_cost, 1.0)
        - w_l * min(latency / max_latency, 1.0)
        + w_c
        + w_l
    ) / (w_a + w_c + w_l)
    return min(max(r, 0.0), 1.0)


class _Ledger:
    """Pending decisions by id; decision ``id`` expires when decision ``id + max_pending`` is
    issued. A dict, so every operation is O(1)."""

    def __init__(self, max_pending: int) -> None:
        self._pending: dict[int, tuple[str, int]] = {}
        self._next_id = 0
        self._max_pending = max_pending

    def issue(self, context: str, arm: int) -> int:
        id = self._next_id
        self._next_id = id + 1
        self._pending[id] = (context, arm)
        self._pending.pop(id - self._max_pending, None)
        return id

    def redeem(self, decision: Decision, models: Sequence[str]) -> tuple[str, int]:
        """Check ``decision`` against its record and consume it; returns (context, arm)."""
        record = self._pending.get(decision.id)
        if record is None:
            raise ValueError(f"decision {decision.id} is unknown, used or expired")
        context, arm = record
        if models[arm] != decision.model or context != decision.context:
            raise ValueError(f"decision {decision.id} does not match its record")
        del self._pending[decision.id]
        return record


class PlainAutomaton:
    """Learning automaton (linear reward-inaction) per context, in plain Python."""

    def __init__(
        self,
        models: Sequence[str],
        *,
        learning_rate: float = 0.1,
        threshold: float = 0.99,
        seed: int = 7,
        max_pending: int = 100_000,
    ) -> None:
        self.models = list(models)
        self._arms = range(len(self.models))
        self._learning_rate = learning_rate
        self._threshold = threshold
        # context -> [probabilities, locked arm or None]
        self._contexts: dict[str, list[Any]] = {}
        self._random = random.Random(seed)
        self._ledger = _Ledger(max_pending)

    def select(self, context: str = "default") -> Decision:
        learner = self._contexts.get(context)
        if learner is None:
            n = len(self.models)
            learner = self._contexts[context] = [[1.0 / n] * n, None]
        probabilities, locked = learner
        if locked is not None:
            arm, probability = locked, 1.0
        else:
            arm = self._random.choices(self._arms, weights=probabilities)[0]
            probability = probabilities[arm] / sum(probabilities)
        id = self._ledger.issue(context, arm)
        return Decision(id, self.models[arm], probability, context)

    def feedback(
        self, decision: Decision, *, accuracy: float, cost: float = 0.0, latency: float = 0.0
    ) -> float:
        reward = linear_reward(accuracy, cost, latency)
        context, arm = self._ledger.redeem(decision, self.models)
        learner = self._contexts[context]
        if learner[1] is None:
            keep = 1.0 - self._learning_rate * reward
            probabilities = [p * keep for p in learner[0]]
            probabilities[arm] = 0.0
            probabilities[arm] = max(1.0 - sum(probabilities), 0.0)
            learner[0] = probabilities
            best = max(probabilities)
            if best >= self._threshold:
                learner[1] = probabilities.index(best)
        return reward

    def state(self) -> dict[str, Any]:
        """Everything needed to rebuild the learners, as plain data (for the snapshot bench)."""
        return {"models": self.models, "contexts": self._contexts}


class PlainQLearning:
    """Stateless epsilon-greedy Q-learning per context, in plain Python."""

    def __init__(
        self,
        models: Sequence[str],
        *,
        learning_rate: float = 0.1,
        epsilon: float = 0.2,
        epsilon_decay: float = 0.99,
        epsilon_min: float = 0.01,
        patience: int = 50,
        seed: int = 7,
        max_pending: int = 100_000,
    ) -> None:
        self.models = list(models)
        self._alpha = learning_rate
        self._epsilon = epsilon
        self._decay = epsilon_decay
        self._epsilon_min = epsilon_min
        self._patience = patience
        # context -> [values, epsilon, greedy arm or None, streak, locked arm or None]
        self._contexts: dict[str, list[Any]] = {}
        self._random = random.Random(seed)
        self._ledger = _Ledger(max_pending)

    def select(self, context: str = "default") -> Decision:
        learner = self._contexts.get(context)
        if learner is None:
            values = [0.0] * len(self.models)
            learner = self._contexts[context] = [values, self._epsilon, None, 0, None]
        values, epsilon, _, _, locked = learner
        if locked is not None:
            arm, probability = locked, 1.0
        else:
            n = len(values)
            best = max(values)
            ties = [i for i, q in enumerate(values) if q == best]
            if self._random.random() < epsilon:
                arm = self._random.randrange(n)
            else:
                arm = ties[self._random.randrange(len(ties))]
            exploit = (1.0 - epsilon) / len(ties) if values[arm] == best else 0.0
            probability = epsilon / n + exploit
        id = self._ledger.issue(context, arm)
        return Decision(id, self.models[arm], probability, context)

    def feedback(
        self, decision: Decision, *, accuracy: float, cost: float = 0.0, latency: float = 0.0
    ) -> float:
        reward = linear_reward(accuracy, cost, latency)
        context, arm = self._ledger.redeem(decision, self.models)
        learner = self._contexts[context]
        if learner[4] is None:
            values = learner[0]
            values[arm] += self._alpha * (reward - values[arm])
            epsilon = learner[1] = max(self._epsilon_min, learner[1] * self._decay)
            best = max(values)
            greedy = values.index(best) if values.count(best) == 1 else None
            if greedy is not None and greedy == learner[2]:
                learner[3] += 1
            else:
                learner[2] = greedy
                learner[3] = int(greedy is not None)
            finished = epsilon <= self._epsilon_min or self._decay >= 1.0
            if finished and learner[3] >= self._patience:
                learner[4] = greedy
        return reward


class NumpyAutomaton:
    """The learning automaton with one NumPy vector per context: cumulative sum and binary search
    to draw, vector operations to update."""

    def __init__(
        self,
        models: Sequence[str],
        *,
        learning_rate: float = 0.1,
        threshold: float = 0.99,
        seed: int = 7,
        max_pending: int = 100_000,
    ) -> None:
        self.models = list(models)
        self._learning_rate = learning_rate
        self._threshold = threshold
        self._contexts: dict[str, list[Any]] = {}
        self._random = np.random.default_rng(seed)
        self._ledger = _Ledger(max_pending)

    def select(self, context: str = "default") -> Decision:
        learner = self._contexts.get(context)
        if learner is None:
            n = len(self.models)
            learner = self._contexts[context] = [np.full(n, 1.0 / n), None]
        probabilities, locked = learner
        if locked is not None:
            arm, probability = locked, 1.0
        else:
            cumulative = np.cumsum(probabilities)
            total = float(cumulative[-1])
            target = self._random.random() * total
            arm = min(int(np.searchsorted(cumulative, target, side="right")), len(self.models) - 1)
            probability = float(probabilities[arm]) / total
        id = self._ledger.issue(context, arm)
        return Decision(id, self.models[arm], probability, context)

    def feedback(
        self, decision: Decision, *, accuracy: float, cost: float = 0.0, latency: float = 0.0
    ) -> float:
        reward = linear_reward(accuracy, cost, latency)
        context, arm = self._ledger.redeem(decision, self.models)
        learner = self._contexts[context]
        if learner[1] is None:
            probabilities = learner[0]
            probabilities *= 1.0 - self._learning_rate * reward
            probabilities[arm] = 0.0
            probabilities[arm] = max(1.0 - float(probabilities.sum()), 0.0)
            if probabilities.max() >= self._threshold:
                learner[1] = int(probabilities.argmax())
        return reward


class RiverEpsilonGreedy:
    """River's ``bandit.EpsilonGreedy``, one per context, with the same decision bookkeeping and
    reward as the others (River itself only pulls arms and takes rewards)."""

    def __init__(
        self,
        models: Sequence[str],
        *,
        epsilon: float = 0.2,
        seed: int = 7,
        max_pending: int = 100_000,
    ) -> None:
        from river import bandit  # imported here: only the benches need river

        self._bandit = bandit
        self.models = list(models)
        self._index = {model: i for i, model in enumerate(self.models)}
        self._epsilon = epsilon
        self._seed = seed
        self._contexts: dict[str, Any] = {}
        self._ledger = _Ledger(max_pending)

    def select(self, context: str = "default") -> Decision:
        policy = self._contexts.get(context)
        if policy is None:
            policy = self._contexts[context] = self._bandit.EpsilonGreedy(
                epsilon=self._epsilon, seed=self._seed
            )
        model = policy.pull(self.models)
        arm = self._index[model]
        id = self._ledger.issue(context, arm)
        # River does not report the probability of its choice; NaN marks it unknown.
        return Decision(id, model, math.nan, context)

    def feedback(
        self, decision: Decision, *, accuracy: float, cost: float = 0.0, latency: float = 0.0
    ) -> float:
        reward = linear_reward(accuracy, cost, latency)
        context, arm = self._ledger.redeem(decision, self.models)
        self._contexts[context].update(self.models[arm], reward)
        return reward


class MinimalEpsilonGreedy:
    """The least a Python router can do: epsilon-greedy over running means, one learner per
    context, no decision record, no decision checks, no expiry. ``select`` returns the arm index
    and ``feedback(arm, ...)`` applies the same (checked) linear reward to that arm's mean. Not
    the same job as pickllm's (decisions are not settled exactly once): a lower bound for plain
    Python."""

    def __init__(self, models: Sequence[str], *, epsilon: float = 0.1, seed: int = 7) -> None:
        self.models = list(models)
        self._epsilon = epsilon
        self._random = random.Random(seed)
        self._contexts: dict[str, tuple[list[float], list[int]]] = {}
        self._context = ""

    def select(self, context: str = "default") -> int:
        learner = self._contexts.get(context)
        if learner is None:
            n = len(self.models)
            learner = self._contexts[context] = ([0.0] * n, [0] * n)
        self._context = context
        means = learner[0]
        if self._random.random() < self._epsilon:
            return self._random.randrange(len(means))
        return means.index(max(means))

    def feedback(
        self, arm: int, *, accuracy: float, cost: float = 0.0, latency: float = 0.0
    ) -> float:
        reward = linear_reward(accuracy, cost, latency)
        means, counts = self._contexts[self._context]
        counts[arm] += 1
        means[arm] += (reward - means[arm]) / counts[arm]
        return reward
