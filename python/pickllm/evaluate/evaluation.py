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

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pickllm.config import Policy, Reward
from pickllm.errors import ConfigError
from pickllm.evaluate.candidates import (
    Candidate,
    FixedModel,
    builtin_policies,
    label,
    parse_candidate,
)
from pickllm.evaluate.estimators import Estimate, mean
from pickllm.evaluate.offpolicy import Metric, fixed_model_estimates, unsupported_contexts
from pickllm.evaluate.rejection import replay_learner
from pickllm.logs.reader import DecisionRecord, LoadedLog, read_log

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
    return {
        "reward": lambda r: reward.compute(accuracy=r.accuracy, cost=r.cost, latency=r.latency),
        "accuracy": lambda r: r.accuracy,
        "cost": lambda r: r.cost,
        "latency": lambda r: r.latency,
    }


def evaluate(
    log: str | os.PathLike[str] | LoadedLog,
    candidates: Sequence[Candidate | str] | None = None,
    *,
    reward: Reward | None = None,
    horizon: int | None = None,
    seed: int = 0,
) -> Evaluation:
    """Estimate each candidate's value on the traffic of ``log`` (a folder or a loaded log).

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
    loaded = log if isinstance(log, LoadedLog) else read_log(log)
    records = loaded.records
    if not records:
        raise ConfigError(f"the log holds no decision with feedback ({loaded.summary()})")
    reward = reward if reward is not None else _logged_reward(loaded)
    metrics = metrics_for(reward)
    if candidates is None:
        candidates = [*(FixedModel(m) for m in loaded.models), *builtin_policies()]
    parsed = [parse_candidate(c, loaded.models) if isinstance(c, str) else c for c in candidates]
    results = [_logger(records, metrics)]
    for candidate in parsed:
        if isinstance(candidate, FixedModel):
            results.append(_fixed(records, candidate.model, metrics))
        else:
            results.append(
                _learner(records, loaded.models, candidate, reward, metrics, horizon, seed)
            )
    return Evaluation(len(records), reward, results, loaded.summary())


def _logged_reward(loaded: LoadedLog) -> Reward:
    rewards = {repr(h.get("reward")) for h in loaded.routers.values()}
    if len(rewards) != 1:
        raise ConfigError("the log's routers used different rewards: give one (--weights)")
    try:
        return Reward(**next(iter(loaded.routers.values()))["reward"])
    except (ConfigError, TypeError):
        raise ConfigError("the log's reward is not readable: give one (--weights)") from None


def _logger(records: Sequence[DecisionRecord], metrics: dict[str, Metric]) -> PolicyEstimate:
    estimates = {
        name: {"on_policy": mean([metric(r) for r in records])} for name, metric in metrics.items()
    }
    return PolicyEstimate("logging policy", "logger", estimates, float(len(records)))


def _fixed(
    records: Sequence[DecisionRecord], model: str, metrics: dict[str, Metric]
) -> PolicyEstimate:
    if not any(model in r.allowed for r in records):
        return PolicyEstimate(model, "fixed", warning=f"{model} was never allowed in the log")
    missing = unsupported_contexts(records, model)
    if missing:
        return PolicyEstimate(
            model,
            "fixed",
            warning=(
                f"no support: the logger never chose {model}, or gave it probability 0, "
                f"in {', '.join(missing)}"
            ),
        )
    estimates, ess = fixed_model_estimates(records, model, metrics)
    return PolicyEstimate(model, "fixed", estimates, ess, warning=_doubt(estimates, ess))


def _doubt(estimates: dict[str, dict[str, Estimate]], size: float) -> str | None:
    """Why estimates resting on an effective sample of ``size`` should not be trusted, if so."""
    problems = []
    if size < MIN_EFFECTIVE_SIZE:
        problems.append(
            f"effective sample size {size:.1f}, below {MIN_EFFECTIVE_SIZE}: the estimates rest "
            "on a few heavily weighted records"
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
    records: Sequence[DecisionRecord],
    models: Sequence[str],
    policy: Policy,
    reward: Reward,
    metrics: dict[str, Metric],
    horizon: int | None,
    seed: int,
) -> PolicyEstimate:
    name = label(policy)
    try:
        result = replay_learner(
            records, models, policy, reward, metrics, horizon=horizon, seed=seed
        )
    except ConfigError as error:
        return PolicyEstimate(name, "learner", warning=f"replay does not apply: {error}")
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
