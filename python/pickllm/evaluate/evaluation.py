"""``evaluate``: the value of candidate policies, estimated from a decision log.

>>> import tempfile
>>> from pickllm import QLearning, Router
>>> folder = tempfile.mkdtemp()
>>> uniform = QLearning(epsilon=1.0, epsilon_decay=1.0, epsilon_min=1.0, lock=False)
>>> with Router(["big", "small"], policy=uniform, seed=5, decision_log=folder) as router:
...     for i in range(400):
...         d = router.select(context="math")
...         good = d.model == "big" or i % 2 == 0
...         _ = router.feedback(d, accuracy=float(good), cost=0.0, latency=0.0)
>>> result = evaluate(folder, ["big", "small"])
>>> logger, big, small = result.policies
>>> big.estimates["accuracy"]["snips"].value
1.0
>>> 0.4 < small.estimates["accuracy"]["snips"].value < 0.6
True
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pickllm import _core
from pickllm.config import Policy, Reward
from pickllm.errors import ConfigError
from pickllm.evaluate.candidates import (
    Candidate,
    FixedModel,
    builtin_policies,
    label,
    parse_candidate,
)
from pickllm.evaluate.estimators import Estimate
from pickllm.evaluate.offpolicy import FixedModelSums, Metric, Survey
from pickllm.evaluate.rejection import Replay, ReplayResult
from pickllm.logs.reader import DecisionRecord, LoadedLog
from pickllm.logs.stream import LogStream

__all__ = ["MIN_EFFECTIVE_SIZE", "Evaluation", "PolicyEstimate", "evaluate", "metrics_for"]

#: Below this effective sample size an estimate rests on too few records to trust (its
#: interval, from a normal approximation, no longer holds): ``evaluate`` warns and the command
#: exits with status 3. With n equally weighted records the size is n; a weight 100 times the
#: others' counts for far less than its share.
MIN_EFFECTIVE_SIZE = 30

#: Metrics whose true value lies in [0, 1]: an estimate outside it is a symptom (few records,
#: extreme weights), not a value.
BOUNDED = ("reward", "accuracy")


@dataclass(frozen=True)
class PolicyEstimate:
    """One candidate's estimates: ``estimates[metric][method]`` with methods ``ips``,
    ``snips``, ``dr`` (fixed models), ``replay`` (learners) or ``on_policy`` (the logger).
    ``warning`` says why there is no number (missing support, replay not applicable)."""

    label: str
    kind: str
    estimates: dict[str, dict[str, Estimate]] = field(default_factory=dict)
    #: Effective sample size (fixed models), accepted records (learners), records (logger).
    effective_size: float = math.nan
    #: Learners: sessions of ``horizon`` decisions.
    sessions: int = 0
    horizon: int = 0
    warning: str | None = None

    @property
    def trusted(self) -> bool:
        """Whether every estimate is a number to go by: none refused, an effective sample size
        of at least :data:`MIN_EFFECTIVE_SIZE`, reward and accuracy inside [0, 1]."""
        return self.warning is None

    def best(self, metric: str = "reward") -> Estimate | None:
        """The estimate shown first: DR, replay or on-policy, whichever this candidate has."""
        by_method = self.estimates.get(metric, {})
        for method in ("dr", "replay", "on_policy"):
            if method in by_method:
                return by_method[method]
        return None


@dataclass(frozen=True)
class Evaluation:
    records: int
    reward: Reward
    policies: list[PolicyEstimate]
    log_summary: str

    @property
    def trusted(self) -> bool:
        """Whether every candidate is trusted (see :attr:`PolicyEstimate.trusted`)."""
        return all(p.trusted for p in self.policies)

    def to_json(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "trusted": self.trusted,
            "min_effective_size": MIN_EFFECTIVE_SIZE,
            "reward": self.reward.model_dump(),
            "log": self.log_summary,
            "policies": [
                {
                    "label": p.label,
                    "kind": p.kind,
                    "effective_size": p.effective_size,
                    "trusted": p.trusted,
                    "sessions": p.sessions,
                    "horizon": p.horizon,
                    "warning": p.warning,
                    "estimates": {
                        metric: {
                            method: {"value": e.value, "low": e.low, "high": e.high}
                            for method, e in methods.items()
                        }
                        for metric, methods in p.estimates.items()
                    },
                }
                for p in self.policies
            ],
        }


def metrics_for(reward: Reward) -> dict[str, Metric]:
    """The estimated quantities; the reward is recomputed from the logged observations with
    ``reward``, so a log can be judged under other weights than it was collected with."""
    spec, compute = json.dumps(reward._core_dict()), _core.compute_reward  # once, not per record
    return {
        "reward": lambda r: compute(spec, r.accuracy, r.cost, r.latency),
        "accuracy": lambda r: r.accuracy,
        "cost": lambda r: r.cost,
        "latency": lambda r: r.latency,
    }


def evaluate(
    log: str | os.PathLike[str] | LoadedLog | LogStream,
    candidates: Sequence[Candidate | str] | None = None,
    *,
    reward: Reward | None = None,
    horizon: int | None = None,
    seed: int = 0,
) -> Evaluation:
    """Estimate each candidate's value on the traffic of ``log``: a folder or file (read as a
    :class:`~pickllm.logs.LogStream`, in three passes with memory bounded independently of
    the log's length), a stream, or a log loaded by :func:`~pickllm.logs.read_log`.

    Candidates are model names or :class:`FixedModel` (IPS, SNIPS and DR), and learners
    (rejection-sampling replay; see :mod:`pickllm.evaluate.rejection`). Without candidates:
    every model of the pool and each built-in learner at its default settings. ``reward``
    defaults to the one the log was collected with. The logging policy itself is listed first,
    with its on-policy means.
    """
    if horizon is not None and (
        isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1
    ):
        raise ConfigError(f"horizon must be an integer >= 1, got {horizon!r}")
    source = log if isinstance(log, LoadedLog | LogStream) else LogStream(log)
    records: Iterable[DecisionRecord] = source.records if isinstance(source, LoadedLog) else source
    if not source.routers:
        raise ConfigError(f"the log holds no decision with feedback ({source.summary()})")
    reward = reward if reward is not None else _logged_reward(source.routers)
    metrics = metrics_for(reward)
    if candidates is None:
        candidates = [*(FixedModel(m) for m in source.models), *builtin_policies()]
    parsed = [parse_candidate(c, source.models) if isinstance(c, str) else c for c in candidates]
    survey = Survey(source.models, metrics)
    for record in records:
        survey.add(record)
    if survey.records == 0:
        raise ConfigError(f"the log holds no decision with feedback ({source.summary()})")
    results: list[PolicyEstimate | _Pending] = [
        PolicyEstimate(
            "logging policy",
            "logger",
            {name: {"on_policy": m.estimate()} for name, m in survey.logger.items()},
            float(survey.records),
        )
    ]
    for candidate in parsed:
        if isinstance(candidate, FixedModel):
            results.append(_fixed(survey, candidate.model))
        else:
            results.append(_learner(survey, source.models, candidate, reward, horizon, seed))
    pending = [r for r in results if isinstance(r, _Pending)]
    fixed = [r.sums for r in pending if isinstance(r.sums, FixedModelSums)]
    replays = [r.sums for r in pending if isinstance(r.sums, Replay)]
    if pending:
        for record in records:
            if fixed:
                values = {name: metric(record) for name, metric in metrics.items()}
                for sums in fixed:
                    sums.add(record, values)
            for replay in replays:
                replay.add(record)
    return Evaluation(
        survey.records,
        reward,
        [r.done() if isinstance(r, _Pending) else r for r in results],
        source.summary(),
    )


def _logged_reward(routers: dict[str, dict[str, Any]]) -> Reward:
    rewards = {repr(h.get("reward")) for h in routers.values()}
    if len(rewards) != 1:
        raise ConfigError("the log's routers used different rewards: give one (--weights)")
    try:
        return Reward(**next(iter(routers.values()))["reward"])
    except (ConfigError, TypeError):
        raise ConfigError("the log's reward is not readable: give one (--weights)") from None


class _Pending:
    """A candidate whose estimates need the second pass over the records."""

    def __init__(self, sums: FixedModelSums | Replay, done: Callable[[], PolicyEstimate]) -> None:
        self.sums = sums
        self.done = done


def _fixed(survey: Survey, model: str) -> PolicyEstimate | _Pending:
    if not survey.ever_allowed(model):
        return PolicyEstimate(model, "fixed", warning=f"{model} was never allowed in the log")
    missing = survey.unsupported_contexts(model)
    if missing:
        return PolicyEstimate(
            model,
            "fixed",
            warning=(
                f"no support: the logger never chose {model}, or gave it probability 0, "
                f"in {', '.join(missing)}"
            ),
        )
    sums = FixedModelSums(model, survey)

    def done() -> PolicyEstimate:
        estimates, ess = sums.estimates()
        warning = _doubt(estimates, ess, sums.mean_weight())
        return PolicyEstimate(model, "fixed", estimates, ess, warning=warning)

    return _Pending(sums, done)


def _doubt(
    estimates: dict[str, dict[str, Estimate]], size: float, mean_weight: Estimate | None = None
) -> str | None:
    """Why estimates resting on an effective sample of ``size``, with importance weights of
    mean ``mean_weight``, should not be trusted, if so."""
    problems = []
    if size < MIN_EFFECTIVE_SIZE:
        problems.append(
            f"effective sample size {size:.1f}, below {MIN_EFFECTIVE_SIZE}: the estimates rest "
            "on a few heavily weighted records"
        )
    if mean_weight is not None and not mean_weight.covers(1.0):
        problems.append(
            f"importance weights average {mean_weight.value:.3g} (95% interval "
            f"{mean_weight.low:.3g} to {mean_weight.high:.3g}), not 1: the log has not yet "
            "shown what this candidate would do everywhere (it was picked too rarely in some "
            "context)"
        )
    outside = [
        f"{method.upper() if method != 'replay' else method} {metric} {e.value:.3g}"
        for metric in BOUNDED
        for method, e in estimates.get(metric, {}).items()
        if not math.isnan(e.value) and not 0.0 <= e.value <= 1.0
    ]
    if outside:
        problems.append(f"{', '.join(outside)} outside [0, 1]")
    return "; ".join(problems) + " (log more, or with more exploration)" if problems else None


def _learner(
    survey: Survey,
    models: Sequence[str],
    policy: Policy,
    reward: Reward,
    horizon: int | None,
    seed: int,
) -> PolicyEstimate | _Pending:
    name = label(policy)
    try:
        replay = Replay.from_survey(survey, models, policy, reward, horizon=horizon, seed=seed)
    except ConfigError as error:
        return PolicyEstimate(name, "learner", warning=f"replay does not apply: {error}")
    return _Pending(replay, lambda: _replayed(name, replay.result()))


def _replayed(name: str, result: ReplayResult) -> PolicyEstimate:
    warning = None
    if result.sessions < 2:
        advice = (
            "lower --horizon or log more"
            if result.horizon > 1
            else "log more, or with more exploration (a higher smallest probability)"
        )
        warning = (
            f"only {result.sessions} session(s) of {result.horizon} accepted decisions: "
            f"{result.accepted} of {result.records} records accepted (the logger's smallest "
            f"probability is {result.acceptance:.2g}); {advice}"
        )
    if result.sessions == 0:
        return PolicyEstimate(name, "learner", warning=warning)
    estimates = {metric: {"replay": e} for metric, e in result.estimates.items()}
    if warning is None:
        warning = _doubt(estimates, float(result.accepted))
    return PolicyEstimate(
        name,
        "learner",
        estimates,
        float(result.accepted),
        result.sessions,
        result.horizon,
        warning,
    )
