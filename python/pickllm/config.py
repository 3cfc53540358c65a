"""Immutable, validated configuration: the reward and the learning policies.

These are pydantic models, validated once when built; the per-query hot path never touches
them. The numeric ranges are checked by the Rust core (one definition, shared with snapshot
loading); pydantic checks types, rejects unknown fields and NaN, and gives a readable ``repr``.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from pickllm import _core
from pickllm.errors import ConfigError

__all__ = [
    "UCB",
    "ChangeDetector",
    "Exp3",
    "LearningAutomaton",
    "Policy",
    "QLearning",
    "Reward",
    "ThompsonSampling",
    "default_policy",
]


def describe_validation_error(owner: str, error: ValidationError) -> str:
    """One line: each problem, naming the field and the value given."""
    parts = []
    for problem in error.errors():
        cause = problem.get("ctx", {}).get("error")
        if isinstance(cause, ConfigError):
            # Raised by pickllm's own check (the core's ranges): it already says it all.
            parts.append(str(cause))
            continue
        field = ".".join(str(part) for part in problem["loc"])
        where = f"{owner}.{field}" if field else owner
        message = problem["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message} (got {problem.get('input')!r})")
    return "; ".join(parts)


class _Config(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as error:
            raise ConfigError(describe_validation_error(type(self).__name__, error)) from None

    def _core_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def _check(self, validate: Any, *args: Any) -> None:
        try:
            validate(json.dumps(self._core_dict()), *args)
        except ConfigError as error:
            raise ConfigError(f"{type(self).__name__}: {error}") from None


class Reward(_Config):
    """How accuracy, cost and latency combine into one reward in [0, 1].

    The default, linear form is
    ``(accuracy*a - cost*min(c/max_cost, 1) - latency*min(l/max_latency, 1) + cost + latency)
    / (accuracy + cost + latency)``: weights are relative, ``max_cost`` (USD) and ``max_latency``
    (seconds) are the points past which a query counts as fully expensive or fully slow.

    ``form="paper"`` uses PickLLM's ``(accuracy*a - cost*c) / (latency*log10(l_ms)/time_scaling)``
    with its safeguards: latency in milliseconds floored at ``latency_floor_ms``, the numerator
    clamped at 0, and the result divided by ``max_value`` (by default the largest value possible)
    and clamped into [0, 1]. See docs/design.md.

    >>> reward = Reward(accuracy=1.0, cost=0.5, latency=0.5, max_cost=0.01, max_latency=10.0)
    >>> reward.compute(accuracy=1.0, cost=0.0, latency=0.0)
    1.0
    >>> reward.compute(accuracy=1.0, cost=0.005, latency=5.0)
    0.75
    """

    accuracy: float = 1.0
    cost: float = 0.5
    latency: float = 0.5
    max_cost: float = 0.01
    max_latency: float = 10.0
    form: Literal["linear", "paper"] = "linear"
    time_scaling: float = 1.0
    latency_floor_ms: float = 10.0
    max_value: float | None = None

    def model_post_init(self, context: Any, /) -> None:
        self._check(_core.validate_reward)

    def _core_dict(self) -> dict[str, Any]:
        form: dict[str, Any] = {"kind": self.form}
        if self.form == "paper":
            form |= {
                "time_scaling": self.time_scaling,
                "latency_floor_ms": self.latency_floor_ms,
                "max_value": self.max_value,
            }
        weights = ("accuracy", "cost", "latency", "max_cost", "max_latency")
        return {name: getattr(self, name) for name in weights} | {"form": form}

    @classmethod
    def _from_core(cls, data: dict[str, Any]) -> Reward:
        form = dict(data["form"])
        kind = form.pop("kind")
        return cls(**{k: v for k, v in data.items() if k != "form"}, form=kind, **form)

    def compute(self, *, accuracy: float, cost: float = 0.0, latency: float = 0.0) -> float:
        """The reward of one observation (a convenience; routers compute it in the core)."""
        return _core.compute_reward(json.dumps(self._core_dict()), accuracy, cost, latency)


class _Policy(_Config):
    """What every policy shares: checked by the core, shown without its ``kind`` tag."""

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)

    def __repr_args__(self) -> Any:
        return [(k, v) for k, v in super().__repr_args__() if k != "kind"]

    def model_post_init(self, context: Any, /) -> None:
        self._check(_core.validate_policy, 0)

    def _core_dict(self) -> dict[str, Any]:
        return self.model_dump()


class ChangeDetector(_Config):
    """A change detector for :class:`UCB` and :class:`ThompsonSampling` (``detect_changes=``).

    Per context and model, a generalized likelihood ratio test (Besson, Kaufmann, Maillard and
    Seznec, 2022) asks whether the model's rewards since the context's last restart changed
    their mean; when one did, the context restarts (every model's statistics, fresh), counted in
    :meth:`pickllm.Router.stats` and logged. ``delta`` in (0, 1) sets the test's threshold
    ``ln(3 n^1.5 / delta)``: smaller, fewer false alarms and later detections. The test runs
    every ``stride`` feedbacks of a model. Memory is bounded (at most 60 buckets per model and
    context); see docs/learners.md for the measured false-alarm rate and detection delay.

    >>> ChangeDetector()
    ChangeDetector(delta=0.01, stride=20)
    """

    delta: float = 0.01
    stride: int = 20

    def __init__(self, delta: float = 0.01, stride: int = 20) -> None:
        super().__init__(delta=delta, stride=stride)
        if not 0.0 < delta < 1.0:
            raise ConfigError(f"ChangeDetector: delta must be in (0, 1), got {delta!r}")
        if not 1 <= stride <= 2**32 - 1:
            raise ConfigError(f"ChangeDetector: stride must be an integer >= 1, got {stride!r}")

    def _core_dict(self) -> dict[str, Any]:
        return self.model_dump()


class LearningAutomaton(_Policy):
    """Learning automaton with linear reward-inaction updates.

    After a model earns reward ``r``, its selection probability moves toward 1 by
    ``learning_rate * r`` and the others shrink in proportion. A context has converged once one
    model's probability reaches ``threshold``; with ``lock=True`` it then always picks that
    model and stops learning, with ``lock=False`` it keeps learning.

    >>> LearningAutomaton(0.05)
    LearningAutomaton(learning_rate=0.05, threshold=0.99, lock=True)
    """

    kind: Literal["learning_automaton"] = "learning_automaton"
    learning_rate: float = 0.1
    threshold: float = 0.99
    lock: bool = True

    def __init__(
        self, learning_rate: float = 0.1, threshold: float = 0.99, lock: bool = True
    ) -> None:
        super().__init__(learning_rate=learning_rate, threshold=threshold, lock=lock)


class QLearning(_Policy):
    """Stateless Q-learning with epsilon-greedy selection.

    ``learning_rate`` is a constant step in (0, 1] or ``"sample_average"`` (step 1/n, so each
    value is the mean reward of its model). Exploration ``epsilon`` decays by ``epsilon_decay``
    per applied feedback down to ``epsilon_min``. A context has converged once exploration has
    reached its floor (or never decays) and the same model has been the unique greedy choice for
    ``patience`` consecutive feedbacks; ``lock`` then behaves as for the automaton. ``share > 0``
    (not in the paper; 0 by default) shares evidence across contexts: a context selects with
    each value shrunk toward the model's mean over all contexts as if that mean were ``share``
    more feedbacks (see docs/learners.md).

    >>> q = QLearning("sample_average", epsilon=0.1, epsilon_decay=1.0, epsilon_min=0.1)
    >>> q.learning_rate, q.patience, q.share, q.lock
    ('sample_average', 50, 0.0, True)
    """

    kind: Literal["q_learning"] = "q_learning"
    learning_rate: float | Literal["sample_average"] = 0.1
    epsilon: float = 0.2
    epsilon_decay: float = 0.99
    epsilon_min: float = 0.01
    patience: int = 50
    share: float = 0.0
    lock: bool = True

    def __init__(
        self,
        learning_rate: float | Literal["sample_average"] = 0.1,
        epsilon: float = 0.2,
        epsilon_decay: float = 0.99,
        epsilon_min: float = 0.01,
        patience: int = 50,
        share: float = 0.0,
        lock: bool = True,
    ) -> None:
        super().__init__(
            learning_rate=learning_rate,
            epsilon=epsilon,
            epsilon_decay=epsilon_decay,
            epsilon_min=epsilon_min,
            patience=patience,
            share=share,
            lock=lock,
        )


class ThompsonSampling(_Policy):
    """Thompson sampling: picks each model with the posterior probability that it is the best.

    Each model has a Beta posterior over its mean reward starting at ``prior = (alpha, beta)``;
    a reward ``r`` in [0, 1] adds ``r`` to alpha and ``1 - r`` to beta (a fractional success).
    ``discount < 1`` fades old evidence toward the prior after every feedback (a memory of about
    ``1 / (1 - discount)`` feedbacks), so the learner follows a model that changes. A context has
    converged once one model's probability of being best reaches ``threshold``; ``lock=True``
    then stops learning as for the automaton, the default ``lock=False`` never stops.
    ``share > 0`` shares evidence across contexts as for :class:`UCB`: a context selects as if
    each posterior also held ``min(share, n)`` observations at the model's mean over all
    contexts, ``n`` the pooled observations (0, the default, turns it off; see docs/learners.md
    for when it helps). ``floor`` (0 by default) and ``detect_changes`` (None by default) as for
    :class:`UCB`.

    >>> ThompsonSampling(discount=0.99).floor
    0.0
    """

    kind: Literal["thompson_sampling"] = "thompson_sampling"
    discount: float = 1.0
    prior: tuple[float, float] = (1.0, 1.0)
    threshold: float = 0.99
    share: float = 0.0
    lock: bool = False
    floor: float = 0.0
    detect_changes: ChangeDetector | None = None

    def __init__(
        self,
        discount: float = 1.0,
        prior: tuple[float, float] = (1.0, 1.0),
        threshold: float = 0.99,
        share: float = 0.0,
        lock: bool = False,
        floor: float = 0.0,
        detect_changes: DetectorSpec = None,
    ) -> None:
        super().__init__(
            discount=discount,
            prior=tuple(prior) if isinstance(prior, list) else prior,
            threshold=threshold,
            share=share,
            lock=lock,
            floor=floor,
            detect_changes=_detector(detect_changes),
        )


#: The default learner's change detector (``UCB().detect_changes``).
DEFAULT_DETECTOR = ChangeDetector()

#: What ``detect_changes=`` accepts: a detector, its settings as a mapping (from JSON or a
#: gateway's TOML), True for the default detector, False or None for none.
DetectorSpec = ChangeDetector | dict[str, Any] | bool | None


def _detector(spec: DetectorSpec) -> ChangeDetector | None:
    if spec is True:
        return ChangeDetector()
    if spec is False or spec is None:
        return None
    if isinstance(spec, dict):
        return ChangeDetector(**spec)
    return spec


class UCB(_Policy):
    """Upper confidence bounds: picks the model with the highest optimistic mean reward.

    ``bound="tuned"`` is UCB1-tuned, ``"kl"`` KL-UCB; ``exploration`` scales the confidence
    budget (1.0 is each paper's; 0.5 measured better, see docs/learners.md). UCB1-tuned is the
    default: as good as KL-UCB on RouterBench and about five times cheaper per feedback.
    ``discount < 1`` fades old evidence (discounted UCB), so a model left untried for long is
    tried again.

    ``share > 0`` shares evidence across contexts: a context selects as if each model also had
    ``min(share, n)`` feedbacks at its mean over all contexts, ``n`` the pooled feedbacks that
    mean rests on (so one unlucky answer weighs one feedback, never ``share``); a new context
    starts from what the pool learned (0 turns it off; 5 by default).

    ``floor`` (1% by default, at most 0.5) is an exploration floor: that share of decisions is
    drawn uniformly from the allowed models, so every model is retried now and then and every
    decision's probability is below 1 and known exactly, which off-policy evaluation of the
    decision logs needs. Otherwise selection is deterministic but for ties (untried models,
    drawn at random).

    ``detect_changes`` (a :class:`ChangeDetector` by default; also its settings as a mapping,
    True for the default detector, False or None for none) restarts a
    context when a model's rewards change (see :class:`ChangeDetector`). The defaults were
    chosen by ``benches/learners.py`` (docs/learners.md). A context has converged once the best
    model's confidence interval lies above every other's.

    >>> UCB(discount=0.999, detect_changes=None)  # doctest: +NORMALIZE_WHITESPACE
    UCB(exploration=0.5, discount=0.999, bound='tuned', share=5.0, lock=False, floor=0.01,
        detect_changes=None)
    """

    kind: Literal["ucb"] = "ucb"
    exploration: float = 0.5
    discount: float = 1.0
    bound: Literal["kl", "tuned"] = "tuned"
    share: float = 5.0
    lock: bool = False
    floor: float = 0.01
    detect_changes: ChangeDetector | None = DEFAULT_DETECTOR

    def __init__(
        self,
        exploration: float = 0.5,
        discount: float = 1.0,
        bound: Literal["kl", "tuned"] = "tuned",
        share: float = 5.0,
        lock: bool = False,
        floor: float = 0.01,
        detect_changes: DetectorSpec = DEFAULT_DETECTOR,
    ) -> None:
        super().__init__(
            exploration=exploration,
            discount=discount,
            bound=bound,
            share=share,
            lock=lock,
            floor=floor,
            detect_changes=_detector(detect_changes),
        )


class Exp3(_Policy):
    """Exp3: exponential weights on importance-weighted rewards, for rewards that change.

    Picks from ``(1 - gamma) * weights + gamma / K``; a reward divided by the probability its
    model was picked with grows that model's log-weight. ``discount < 1`` pulls log-weights
    toward uniform after every feedback. Converged once one model holds ``threshold`` of the
    weight; ``lock`` as for the others. ``share > 0`` shares evidence across contexts: a context
    selects as if it had also played ``share`` rounds in which every model earned its mean over
    all contexts (0, the default, turns it off; see docs/learners.md).

    >>> Exp3(gamma=0.05)
    Exp3(gamma=0.05, discount=1.0, threshold=0.99, share=0.0, lock=False)
    """

    kind: Literal["exp3"] = "exp3"
    gamma: float = 0.1
    discount: float = 1.0
    threshold: float = 0.99
    share: float = 0.0
    lock: bool = False

    def __init__(
        self,
        gamma: float = 0.1,
        discount: float = 1.0,
        threshold: float = 0.99,
        share: float = 0.0,
        lock: bool = False,
    ) -> None:
        super().__init__(
            gamma=gamma, discount=discount, threshold=threshold, share=share, lock=lock
        )


def default_policy() -> Policy:
    """The learner pickllm runs when none is named: ``UCB()``, chosen by measurement
    (docs/learners.md). The one definition of the default, used by ``Router()``, the gateway's
    ``policy`` (``kind = "ucb"`` when omitted), the LiteLLM plug-in's routers and
    ``pickllm replay``'s default policies, so every entry point runs the same learner.

    >>> default_policy()  # doctest: +NORMALIZE_WHITESPACE
    UCB(exploration=0.5, discount=1.0, bound='tuned', share=5.0, lock=False, floor=0.01,
        detect_changes=ChangeDetector(delta=0.01, stride=20))
    """
    return UCB()


#: Any learning policy: a union told apart by each class's ``kind`` tag.
Policy = LearningAutomaton | QLearning | ThompsonSampling | UCB | Exp3
#: The policy classes, for ``isinstance`` checks.
POLICIES = (LearningAutomaton, QLearning, ThompsonSampling, UCB, Exp3)


def policy_kinds() -> dict[str, type[Policy]]:
    """Every policy class by its ``kind`` tag, as config files and the command line name them."""
    return {cls.model_fields["kind"].default: cls for cls in POLICIES}


def build_policy(kind: object, settings: dict[str, Any]) -> Policy:
    """A policy from its ``kind`` and settings, as a config file, a JSON option or a snapshot
    gives them. An unknown kind or setting is a one-line ConfigError naming what is accepted
    (a typo is never a TypeError from deep inside).

    >>> build_policy("ucb", {"exploration": 1.0, "floor": 0.0}).exploration
    1.0
    >>> try:
    ...     build_policy("ucb", {"exploraton": 1.0})
    ... except ConfigError as error:
    ...     print(str(error)[:32])
    UCB has no setting 'exploraton';
    """
    classes = policy_kinds()
    if not isinstance(kind, str) or kind not in classes:
        raise ConfigError(f"unknown policy kind {kind!r}; known: {sorted(classes)}")
    cls = classes[kind]
    known = [name for name in cls.model_fields if name != "kind"]
    unknown = [name for name in settings if name not in known]
    if unknown:
        raise ConfigError(
            f"{cls.__name__} has no setting {', '.join(map(repr, unknown))}; "
            f"its settings: {', '.join(known)}"
        )
    return cls(**settings)


def policy_from_core(data: dict[str, Any]) -> Policy:
    """Rebuild a policy object from the core's JSON form, by its ``kind``."""
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k != "kind"}
    return build_policy(data.get("kind"), fields)
