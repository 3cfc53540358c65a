"""Learners as candidates: rejection-sampling replay (Li, Chu, Langford and Wang, WSDM 2011).

A learner's choices depend on what it has learned, so no fixed-policy estimator applies. Replay
runs the learner on the log: for each record it draws the learner's choice ``a`` from the
models the record allowed; if ``a`` is the logged model the record is accepted with probability
``c / p`` (``p`` the logged propensity of that model, ``c`` the smallest logging probability of
any allowed model over the whole log) and the learner learns from the logged outcome; otherwise
the record is skipped. Every record is then accepted with the same probability ``c`` whatever
its context, and an accepted record's model is distributed as the learner's own choice, so the
accepted stream is distributed exactly as the learner's live traffic would be (with uniform
logging ``c = p = 1/K``: Li et al.'s replay). It needs every allowed model to have a positive
logging probability in every record; when one had probability 0 (a converged, locked learner
logged), replay does not apply and says so. It keeps about ``c * n`` of ``n`` records.

The estimand is the learner's mean reward (and accuracy, cost, latency) over its first
``horizon`` decisions from a fresh start. The log is consumed in order: the first ``horizon``
accepted records are one session, the next ``horizon`` a fresh learner's second session, and so
on; sessions use disjoint records, so their values are independent draws, and the interval is
Student's t over sessions.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from pickllm.config import Policy, Reward
from pickllm.errors import ConfigError
from pickllm.evaluate.estimators import Estimate, t975
from pickllm.evaluate.offpolicy import Metric, Survey
from pickllm.logs.reader import DecisionRecord
from pickllm.router import Router

__all__ = ["Replay", "ReplayResult", "replay_learner", "t975"]


@dataclass(frozen=True)
class ReplayResult:
    """Per metric, the mean over sessions with its t interval; ``sessions`` of ``horizon``
    accepted records each, ``accepted`` of ``records`` used, each with probability
    ``acceptance``."""

    estimates: dict[str, Estimate]
    sessions: int
    horizon: int
    accepted: int
    records: int
    acceptance: float


class Replay:
    """Replay of one learner, fed the log's records in time order (:meth:`add`), given the
    acceptance constant ``c`` and the number of records (for the default ``horizon``, a tenth
    of the records expected to be accepted). Raises ConfigError when replay does not apply."""

    @classmethod
    def from_survey(
        cls,
        survey: Survey,
        models: Sequence[str],
        policy: Policy,
        reward: Reward,
        *,
        horizon: int | None = None,
        seed: int = 0,
    ) -> Replay:
        """The replay of ``policy`` on the log ``survey`` has read (its acceptance constant,
        record count and missing support)."""
        return cls(
            models,
            policy,
            reward,
            survey.metrics,
            acceptance=survey.acceptance,
            records=survey.records,
            horizon=horizon,
            seed=seed,
            unsupported=survey.zero_support_error(),
        )

    def __init__(
        self,
        models: Sequence[str],
        policy: Policy,
        reward: Reward,
        metrics: dict[str, Metric],
        *,
        acceptance: float,
        records: int,
        horizon: int | None = None,
        seed: int = 0,
        unsupported: ConfigError | None = None,
    ) -> None:
        if acceptance <= 0:
            raise unsupported or ConfigError(
                "replay needs every allowed model to have a positive logging probability, and "
                "some logged decision gave one probability 0"
            )
        if horizon is None:
            horizon = max(1, math.floor(acceptance * records / 10))
        if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
            raise ConfigError(f"horizon must be an integer >= 1, got {horizon!r}")
        self.horizon, self.acceptance = horizon, acceptance
        self._policy, self._reward, self._metrics = policy, reward, metrics
        self._rng = random.Random(seed)
        self._models = tuple(models)
        self._router = self._fresh()
        self._sums = dict.fromkeys(metrics, 0.0)
        self._sessions: list[dict[str, float]] = []
        self._accepted = self._taken = self._records = 0

    def _fresh(self) -> Router:
        # max_pending=1: a draw the log cannot answer is simply left to expire.
        seed = self._rng.getrandbits(63)
        return Router(
            self._models, policy=self._policy, reward=self._reward, seed=seed, max_pending=1
        )

    def add(self, record: DecisionRecord) -> None:
        self._records += 1
        allowed = None if record.allowed == self._models else record.allowed
        decision = self._router.select(record.context, allowed=allowed)
        if (
            decision.model != record.model
            or self._rng.random() >= self.acceptance / record.probability
        ):
            return
        self._router.feedback(
            decision, accuracy=record.accuracy, cost=record.cost, latency=record.latency
        )
        for name, metric in self._metrics.items():
            self._sums[name] += metric(record)
        self._accepted += 1
        self._taken += 1
        if self._taken == self.horizon:
            self._sessions.append({name: t / self.horizon for name, t in self._sums.items()})
            self._sums = dict.fromkeys(self._metrics, 0.0)
            self._taken = 0
            self._router = self._fresh()

    def result(self) -> ReplayResult:
        sessions = self._sessions
        return ReplayResult(
            {name: _t_interval([s[name] for s in sessions]) for name in self._metrics},
            len(sessions),
            self.horizon,
            self._accepted,
            self._records,
            self.acceptance,
        )


def replay_learner(
    records: Sequence[DecisionRecord],
    models: Sequence[str],
    policy: Policy,
    reward: Reward,
    metrics: dict[str, Metric],
    *,
    horizon: int | None = None,
    seed: int = 0,
) -> ReplayResult:
    """Replay ``policy`` on ``records`` (in time order); ``horizon`` defaults to a tenth of
    the records expected to be accepted. Raises ConfigError when replay does not apply."""
    survey = Survey(models, metrics)
    for record in records:
        survey.add(record)
    replay = Replay.from_survey(survey, models, policy, reward, horizon=horizon, seed=seed)
    for record in records:
        replay.add(record)
    return replay.result()


def _t_interval(values: list[float]) -> Estimate:
    n = len(values)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan)
    m = math.fsum(values) / n
    if n == 1:
        return Estimate(m, -math.inf, math.inf)
    sd = math.sqrt(math.fsum((v - m) ** 2 for v in values) / (n - 1))
    half = t975(n - 1) * sd / math.sqrt(n)
    return Estimate(m, m - half, m + half)
