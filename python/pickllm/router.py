"""`Router`: the object users meet. It picks a model per query and learns from feedback."""

from __future__ import annotations

import json
import math
import os
import secrets
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from pickllm import _core, _savefile
from pickllm._closing import Closing
from pickllm._core import Decision
from pickllm.budget import Budget
from pickllm.config import POLICIES, Policy, Reward, default_policy, policy_from_core
from pickllm.contexts import Mapper, PromptContexts, is_wrapped, prompt_text, unwrap
from pickllm.errors import ArgumentTypeError, ConfigError, UnknownModelError
from pickllm.health import CircuitBreaker, State
from pickllm.logs.writer import DecisionLog, current_prompt
from pickllm.models import Model
from pickllm.routing import (
    DEFAULT_BREAKER,
    DEFAULT_DEADLINE,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_MAX_RETRY_AFTER,
    Prompt,
    RouteLoop,
    RouteOptions,
    RouteResult,
)
from pickllm.scorers.base import ScorerLike
from pickllm.state.config import RedisState
from pickllm.state.status import SharedStatus
from pickllm.stats import DEFAULT_MAX_CONTEXTS, MAX_CONTEXTS, ContextStats

if TYPE_CHECKING:
    from pickllm.state.budget import SharedSpending
    from pickllm.state.replica import Replica
    from pickllm.warm_start import WarmStartSource

__all__ = ["Router"]

_SEED_LIMIT = 2**64

#: During a route()/aroute() in the prompt mapper's warm-up: the prompt's text and, once its
#: first attempt recorded it, its warm-up index, so that fallback attempts count it once.
_warmup_prompt: ContextVar[tuple[str, list[int]] | None] = ContextVar(
    "pickllm_warmup_prompt", default=None
)


class RouteKeywords(TypedDict, total=False):
    """The route-loop keyword arguments of :meth:`Router.restore` and :meth:`Router.load`
    (those of :class:`Router`, documented there)."""

    scorer: ScorerLike | None
    max_attempts: int
    temperature: float | None
    stream: bool
    breaker: CircuitBreaker | None
    budget: Budget | None
    deadline: float | None
    attempt_deadline: float | None
    max_response_bytes: int | None
    max_retry_after: float


def _restore(blob: bytes) -> Router:
    """Module-level so that pickle can name it."""
    return Router.restore(blob)


class Router(Closing):
    """Routes each query to one model of a pool and learns, per context, which model is best.

    Selection and learning are split so that a gateway can serve many queries at once:
    :meth:`select` returns a :class:`Decision`, and :meth:`feedback` later applies what that
    query cost, how long it took and how good the answer was. Each context (a topic, a tenant,
    a task type) has its own learner, created on first use.

    Built with :class:`Model` entries (a name, a backend and prices), it also runs the whole
    loop: :meth:`route` and :meth:`aroute` pick a model, call it, time it, price it, score the
    answer and feed the reward back, falling back to other models when a call fails.

    Args:
        models: the pool: unique model names, or :class:`Model` specs with backends.
        policy: the learner every context runs (default: :func:`pickllm.default_policy`, today
            ``UCB()``, chosen by measurement: see docs/learners.md; the paper's
            ``LearningAutomaton`` and ``QLearning`` remain).
        reward: how accuracy, cost and latency combine (default: ``Reward()``).
        seed: fixes every random choice; the same seed and the same feedback give the same
            decisions on every platform. ``None`` draws a random seed.
        prior: a starting point for new contexts, one value per model: relative selection
            weights (> 0) for the automaton and Exp3, initial values in [0, 1] for Q-learning,
            a mean reward in [0, 1] counted as one observation for Thompson sampling and UCB.
        max_pending: a decision can still receive feedback until this many newer decisions
            have been issued; older ones expire, so unanswered decisions cost bounded memory.
        default_context: the context of selections that name none.
        max_contexts: the most contexts that have learned kept at once (default a million;
            None: unbounded); past it the least recently learned is evicted. As many contexts
            that were selected but never learned are kept apart, the oldest dropped first, so
            selections never evict learned ones. A decision whose context was evicted still
            takes feedback, which re-creates the context from the prior. See :meth:`stats`.
        scorer: grades routed answers in [0, 1] (see :mod:`pickllm.scorers`); without one,
            :meth:`route` leaves each decision for :meth:`feedback` to complete later.
        max_attempts: calls :meth:`route` makes for one query before giving up.
        temperature: sampling temperature of routed calls (None: the server's default).
        stream: stream routed calls, which records the time to the first token.
        breaker: when a failing model is taken out of selection and tried again (see
            :class:`CircuitBreaker`); None disables it (Retry-After is honoured regardless).
        budget: spending caps for routed calls, per context and per router (see
            :class:`Budget`); every model then needs ``max_tokens``, which bounds its cost.
        deadline: seconds for one :meth:`route`/:meth:`aroute` call, every attempt and the
            scorer included (None: unbounded). A call still running at the deadline fails as
            that model's :class:`~pickllm.backends.errors.DeadlineExceededError`; a scorer
            without a grade by then leaves the decision for :meth:`feedback`.
        attempt_deadline: seconds for each attempt, within ``deadline`` (None: what is left of
            it), so that a slow model leaves time to fall back.
        max_response_bytes: bytes read at most from one answer, body or stream (default 8 MiB;
            None: unbounded); past it the call fails as a
            :class:`~pickllm.backends.errors.ResponseTooLargeError`.
        max_retry_after: the longest an error answer's Retry-After keeps a model out, in seconds.
        decision_log: a folder (or a :class:`~pickllm.logs.DecisionLog` for its options) where
            every decision, with its probabilities, and every feedback is logged off the hot
            path, for ``pickllm evaluate``; closed by :meth:`close`/:meth:`aclose`.
        shared: learn as one with every router sharing this :class:`RedisState` (and hold
            budgets across them): feedback goes through a replicated log on Redis, applied by
            every router in the same order (see :meth:`sync` and :meth:`shared_status`).
        contexts: discover contexts from prompts (see :class:`~pickllm.PromptContexts` and
            docs/contexts.md): selections given a prompt and no explicit context are routed in
            the context of the prompt's cluster once the warm-up is over. Not yet supported
            with ``shared=``.

    >>> router = Router(["gpt-4o", "mistral-7b"], seed=7)
    >>> d = router.select(context="finance")
    >>> d.model in router.models
    True
    >>> 0.0 <= router.feedback(d, accuracy=1.0, cost=0.002, latency=1.3) <= 1.0
    True
    """

    # "__dict__" only holds the hot path bound by _bind_hot_path.
    __slots__ = (
        "__dict__",
        "_core",
        "_default_context",
        "_log",
        "_mapper",
        "_models",
        "_policy",
        "_reward",
        "_route_loop",
        "_shared",
    )

    def __init__(
        self,
        models: Sequence[str | Model],
        *,
        policy: Policy | None = None,
        reward: Reward | None = None,
        seed: int | None = None,
        prior: Mapping[str, float] | None = None,
        max_pending: int = 100_000,
        default_context: str = "default",
        max_contexts: int | None = DEFAULT_MAX_CONTEXTS,
        scorer: ScorerLike | None = None,
        max_attempts: int = 3,
        temperature: float | None = None,
        stream: bool = False,
        breaker: CircuitBreaker | None = DEFAULT_BREAKER,
        budget: Budget | None = None,
        deadline: float | None = DEFAULT_DEADLINE,
        attempt_deadline: float | None = None,
        max_response_bytes: int | None = DEFAULT_MAX_RESPONSE_BYTES,
        max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
        decision_log: str | os.PathLike[str] | DecisionLog | None = None,
        shared: RedisState | None = None,
        contexts: PromptContexts | None = None,
    ) -> None:
        names, specs = _pool(models)
        if contexts is not None and not isinstance(contexts, PromptContexts):
            raise ArgumentTypeError(f"contexts must be a PromptContexts or None, got {contexts!r}")
        if shared is not None and not isinstance(shared, RedisState):
            raise ArgumentTypeError(f"shared must be a RedisState or None, got {shared!r}")
        options = RouteOptions(
            scorer=scorer,
            max_attempts=max_attempts,
            temperature=temperature,
            stream=stream,
            breaker=breaker,
            budget=budget,
            deadline=deadline,
            attempt_deadline=attempt_deadline,
            max_response_bytes=max_response_bytes,
            max_retry_after=max_retry_after,
        )
        policy = default_policy() if policy is None else policy
        reward = Reward() if reward is None else reward
        if not isinstance(policy, POLICIES):
            names = ", ".join(f"{cls.__name__}(...)" for cls in POLICIES)
            raise ArgumentTypeError(f"policy must be one of {names}, got {policy!r}")
        if not isinstance(reward, Reward):
            raise ArgumentTypeError(f"reward must be a Reward, got {reward!r}")
        if seed is None:
            seed = secrets.randbits(64)
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < _SEED_LIMIT:
            raise ConfigError(f"seed must be an integer in [0, 2**64), got {seed!r}")
        if isinstance(max_pending, bool) or not isinstance(max_pending, int) or max_pending < 1:
            raise ConfigError(f"max_pending must be an integer >= 1, got {max_pending!r}")
        if max_contexts is not None and (
            isinstance(max_contexts, bool)
            or not isinstance(max_contexts, int)
            or not 1 <= max_contexts <= MAX_CONTEXTS
        ):
            raise ConfigError(
                f"max_contexts must be an integer in [1, 2**31] or None for unbounded, "
                f"got {max_contexts!r}"
            )
        if not isinstance(default_context, str):
            raise ConfigError(f"default_context must be a str, got {default_context!r}")
        config = {
            "models": names,
            "policy": policy._core_dict(),
            "reward": reward._core_dict(),
            "prior": _prior_values(prior, names),
            "max_pending": max_pending,
            "default_context": default_context,
            "max_contexts": max_contexts,
        }
        self._core = _core.RouterCore(json.dumps(config), seed)
        self._mapper = None if contexts is None else Mapper(contexts)
        self._shared: Replica | None = None if shared is None else shared._attach(self._core)
        self._share_mapper()
        self._models = tuple(names)
        self._default_context = default_context
        self._policy: Policy = policy
        self._reward = reward
        try:
            self._route_loop = self._build_route_loop(specs, options)
            self._log = _open_log(decision_log, self)
        except BaseException:
            if self._shared is not None:  # a refused router leaves no threads behind
                self._shared.close()
            raise
        self._bind_hot_path()

    def _share_mapper(self) -> None:
        """With shared state, the prompt mapper is fitted once for every replica: published
        through the shared state, adopted from it (see :mod:`pickllm.state.replica`)."""
        if self._mapper is not None and self._shared is not None:
            self._mapper.share(self._core)
            self._shared.share_mapper(self._mapper)

    def _build_route_loop(self, specs: dict[str, Model], options: RouteOptions) -> RouteLoop | None:
        if not specs:
            if options.uses_route:
                raise ConfigError(
                    "scorer and budget are only used by route(): give models with backends"
                )
            return None
        return RouteLoop(self, specs, options, spending=self._shared_spending(options.budget))

    def _shared_spending(self, budget: Budget | None) -> SharedSpending | None:
        """With shared state, the budget's accounts live in Redis for every router sharing it."""
        shared = getattr(self, "_shared", None)
        return None if budget is None or shared is None else shared.spending(budget)

    def _bind_hot_path(self) -> None:
        """Bind the core's ``select`` and ``feedback`` on this instance, shadowing the methods
        below: the core's take the same arguments and do the same thing, and calling them
        directly skips one Python frame per call, about a quarter of a decision's cost. The
        methods stay on the class for their documentation and for subclasses that override
        them (those are left alone). With a decision log, both are wrapped to queue a record;
        without one, nothing is added. With shared state, the core's feedback settles and
        queues the event for the shared log (see :mod:`pickllm.state.replica`)."""
        select, feedback = self._core.select, self._core.feedback
        if self._log is not None:
            select, feedback = self._log.wrap(self._core)
        self.__dict__["_select"] = select
        self.__dict__["_feedback"] = feedback
        cls = type(self)
        if self._mapper is not None:
            return  # select and feedback go through the prompt mapper: no shortcut
        if cls.select is Router.select:
            self.__dict__["select"] = select
        if cls.feedback is Router.feedback:
            self.__dict__["feedback"] = feedback

    # ==================== Routing ====================

    def select(
        self,
        context: str | None = None,
        *,
        exclude: Iterable[str] | None = None,
        allowed: Iterable[str] | None = None,
        prompt: Prompt | None = None,
    ) -> Decision:
        """Pick a model for one query in ``context`` (the default context when None).

        ``allowed`` restricts the choice to some models and ``exclude`` removes some (both may be
        given); the learner's probabilities are renormalized over what remains. The returned
        decision records the model, the probability it was chosen with, an id and the context.

        ``prompt`` (text or chat messages) is read by a router built with ``contexts=``: with no
        explicit ``context`` the query goes to the context of the prompt's cluster (an explicit
        context wins, or combines as ``"<context>/cluster-<i>"`` with
        ``PromptContexts(combine=True)``). An empty or oversized prompt raises
        :class:`~pickllm.errors.PromptError` before anything is selected. A router without
        ``contexts=`` refuses a ``prompt`` with a :class:`~pickllm.errors.ConfigError` naming
        the fix, ``Router(models, contexts=PromptContexts(...))``.
        """
        select = self.__dict__["_select"]
        mapper = self._mapper
        if mapper is None:  # a prompt is refused by the core, with the fix in its message
            return select(context, exclude=exclude, allowed=allowed, prompt=prompt)  # type: ignore[no-any-return]
        holder: list[int] | None = None
        if prompt is None:
            pending = _warmup_prompt.get()
            if pending is None:
                return select(context, exclude=exclude, allowed=allowed)  # type: ignore[no-any-return]
            text, holder = pending
        elif context is not None and not mapper.config.combine:
            return select(context, exclude=exclude, allowed=allowed)  # type: ignore[no-any-return]
        else:
            text = prompt_text(prompt, mapper.config.max_prompt_bytes)
        if context is not None and not isinstance(context, str):
            raise ArgumentTypeError(f"context must be a str, got {type(context).__name__}")
        if mapper.fitted is not None:
            return select(mapper.context(text, context), exclude=exclude, allowed=allowed)  # type: ignore[no-any-return]
        kwargs = {"exclude": exclude, "allowed": allowed}
        return mapper.warm_select(self._core, select, text, context, kwargs, holder)

    def feedback(
        self, decision: Decision, *, accuracy: float, cost: float = 0.0, latency: float = 0.0
    ) -> float:
        """Apply what a decision's query produced; returns the reward used, in [0, 1].

        ``accuracy`` in [0, 1] (from a scorer or a person), ``cost`` in USD and ``latency`` in
        seconds, both finite and non-negative. Each decision takes feedback once; a rejected
        call changes nothing.
        """
        feedback = self.__dict__["_feedback"]
        if self._mapper is None:
            return feedback(decision, accuracy=accuracy, cost=cost, latency=latency)  # type: ignore[no-any-return]

        def apply() -> float:
            return feedback(decision, accuracy=accuracy, cost=cost, latency=latency)  # type: ignore[no-any-return]

        return self._mapper.feedback(self._core, apply, decision, accuracy, cost, latency)

    def observe(
        self,
        context: str,
        model: str,
        *,
        accuracy: float,
        cost: float = 0.0,
        latency: float = 0.0,
        probability: float | None = None,
    ) -> float:
        """Learn from an outcome that no decision of this router stands for (an imported log
        line, say): ``model`` answered in ``context`` with ``probability`` of being chosen (its
        propensity, if known). Returns the reward used. With ``shared=`` the observation is
        published like feedback and learned from the shared log.

        >>> router = Router(["gpt-4o", "mistral-7b"], seed=7)
        >>> router.observe("finance", "gpt-4o", accuracy=1.0, probability=0.5)
        1.0
        >>> router.feedback_counts("finance")
        {'gpt-4o': 1, 'mistral-7b': 0}
        """
        return self._core.observe(
            context, model, accuracy=accuracy, cost=cost, latency=latency, probability=probability
        )

    def warm_start(self, outcomes: WarmStartSource, *, weight: int = 10) -> int:
        """Seed contexts from evaluated prompts, with a bounded weight; returns the number of
        observations applied.

        ``outcomes``: RouterBench-format files or folders (one path or a list), loaded
        :class:`~pickllm.replay.Outcomes`, or per context and model ``(mean accuracy, count)``
        (optionally ``(mean accuracy, count, mean cost, mean latency)``). Each (context, model)
        is observed ``min(count, weight)`` times at its means (through :meth:`observe`, so the
        pooled evidence and replicas sharing state learn it too): a context starts where the
        data left off, and its own feedback outweighs the seed after ``weight`` feedbacks of a
        model. Models outside the pool are left out. See docs/learners.md for what it saves.

        >>> router = Router(["big", "small"], seed=1)
        >>> router.warm_start({"math": {"big": (0.9, 200), "small": (0.4, 3)}})
        13
        >>> router.feedback_counts("math")
        {'big': 10, 'small': 3}
        """
        from pickllm.warm_start import seeds

        if isinstance(weight, bool) or not isinstance(weight, int) or weight < 1:
            raise ConfigError(f"weight must be an integer >= 1, got {weight!r}")
        applied = 0
        for seed in seeds(outcomes, self._models):
            for _ in range(min(seed.count, weight)):
                self.observe(
                    seed.context,
                    seed.model,
                    accuracy=seed.accuracy,
                    cost=seed.cost,
                    latency=seed.latency,
                )
                applied += 1
        return applied

    def sync(self, timeout: float = 10.0) -> None:
        """Return once every event published to the shared state before the call (this
        router's own feedback included) has been learned here; for tests and graceful shutdown.
        Raises :class:`~pickllm.state.SyncTimeoutError` after ``timeout`` seconds."""
        self._shared_or_raise().sync(timeout)

    def shared_status(self) -> SharedStatus:
        """Connected, lag, buffered and dropped events of the shared state (see
        :class:`~pickllm.state.SharedStatus`)."""
        return self._shared_or_raise().status()

    def _shared_or_raise(self) -> Replica:
        if self._shared is None:
            raise ConfigError("needs Router(..., shared=RedisState(...))")
        return self._shared

    def route(
        self, prompt: Prompt, *, context: str | None = None, reference: str | None = None
    ) -> RouteResult:
        """Answer one query with the model the learner picks, and learn from the outcome.

        ``prompt`` is text or chat messages; ``reference`` is what reference-based scorers
        compare against. Failed calls are fed back as zero accuracy and the query goes to the
        next model by the learner's ranking; if all ``max_attempts`` fail,
        :class:`~pickllm.routing.AllModelsFailedError` lists every attempt.

        With ``contexts=``, the prompt chooses the context as for :meth:`select`.
        """
        loop = self._route_loop_or_raise()
        context, warmup = self._prompt_context(prompt, context)
        if warmup is None and (self._log is None or not self._log.prompts):
            return loop.route(prompt, context, reference)
        token = current_prompt.set(prompt)
        warm_token = _warmup_prompt.set(warmup)
        try:
            return loop.route(prompt, context, reference)
        finally:
            _warmup_prompt.reset(warm_token)
            current_prompt.reset(token)

    async def aroute(
        self, prompt: Prompt, *, context: str | None = None, reference: str | None = None
    ) -> RouteResult:
        """The async twin of :meth:`route`; safe to run many at once."""
        loop = self._route_loop_or_raise()
        context, warmup = self._prompt_context(prompt, context)
        if warmup is None and (self._log is None or not self._log.prompts):
            return await loop.aroute(prompt, context, reference)
        token = current_prompt.set(prompt)
        warm_token = _warmup_prompt.set(warmup)
        try:
            return await loop.aroute(prompt, context, reference)
        finally:
            _warmup_prompt.reset(warm_token)
            current_prompt.reset(token)

    def _prompt_context(
        self, prompt: Prompt, context: str | None
    ) -> tuple[str | None, tuple[str, list[int]] | None]:
        """The context a routed prompt selects in, once fitted; during the warm-up, the prompt
        for the route loop's selections to record (see :meth:`select`)."""
        mapper = self._mapper
        if mapper is None or (context is not None and not mapper.config.combine):
            return context, None
        if context is not None and not isinstance(context, str):
            raise ArgumentTypeError(f"context must be a str, got {type(context).__name__}")
        text = prompt_text(prompt, mapper.config.max_prompt_bytes)
        if mapper.fitted is not None:
            return mapper.context(text, context), None
        return context, (text, [])

    @contextmanager
    def _prompt_scope(self, prompt: Prompt, context: str | None) -> Iterator[str | None]:
        """For callers that make their own calls (the gateway): yields the context to select in
        for ``prompt`` (as :meth:`route` would), and within the block the selections made
        without a prompt record it during the warm-up (one prompt, however many attempts)."""
        context, warmup = self._prompt_context(prompt, context)
        token = _warmup_prompt.set(warmup)
        try:
            yield context
        finally:
            _warmup_prompt.reset(token)

    def _route_loop_or_raise(self) -> RouteLoop:
        if self._route_loop is None:
            raise ConfigError(
                "route() needs models with backends: Router([Model(name, backend=...), ...])"
            )
        return self._route_loop

    def health(self) -> dict[str, State]:
        """Each model's circuit: "closed" (called), "open" (left out) or "half_open"."""
        loop = self._route_loop_or_raise()
        return {model: loop.health.state(model) for model in self._models}

    def spent(self, context: str | None = None) -> float:
        """USD spent by routed calls in ``context``, or by the whole router when None.
        Needs a ``budget``; spending is kept exactly and not saved in snapshots."""
        loop = self._route_loop_or_raise()
        if loop.spending is None:
            raise ConfigError("spent() needs a Router(..., budget=Budget(...))")
        return float(loop.spending.spent(context))

    def close(self) -> None:
        """Close every model's backend (their connection pools) and the decision log; with
        ``shared=``, publish the feedback still queued and stop the threads that talk to Redis."""
        try:
            for spec in self._specs().values():
                spec.backend.close()
        finally:
            if self._log is not None:
                self._log.close()
            if self._shared is not None:
                self._shared.close()

    async def aclose(self) -> None:
        """Close every model's backend, async resources included, and the decision log."""
        try:
            for spec in self._specs().values():
                await spec.backend.aclose()
        finally:
            if self._log is not None:
                self._log.close()
            if self._shared is not None:
                await self._shared.aclose()

    def _specs(self) -> dict[str, Model]:
        return {} if self._route_loop is None else self._route_loop.specs

    # ==================== Inspection ====================

    @property
    def models(self) -> tuple[str, ...]:
        """The pool, in the order given."""
        return self._models

    @property
    def default_context(self) -> str:
        """The context of selections that name none."""
        return self._default_context

    @property
    def policy(self) -> Policy:
        return self._policy

    @property
    def decision_log(self) -> DecisionLog | None:
        """The decision log, or None."""
        return self._log

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
        """Every context held: those that have learned, least recently learned first, then
        those only selected so far, oldest first (the order in which ``max_contexts`` lets
        them go)."""
        return self._core.contexts()

    def stats(self) -> ContextStats:
        """How many contexts the router holds and how many it let go (see :class:`ContextStats`)."""
        learned, unlearned, evicted, dropped, changes = self._core.context_counts()
        max_contexts = json.loads(self._core.config_json()).get("max_contexts")
        return ContextStats(
            contexts=learned + unlearned,
            learned=learned,
            unlearned=unlearned,
            evicted=evicted,
            dropped=dropped,
            max_contexts=max_contexts,
            changes=changes,
            prompt_contexts=None if self._mapper is None else self._mapper.stats(),
        )

    @property
    def prompt_contexts(self) -> PromptContexts | None:
        """The prompt-context configuration (None without ``contexts=``)."""
        return None if self._mapper is None else self._mapper.config

    @property
    def identity(self) -> int:
        """This router's random id, written on its decisions as ``Decision.router``; feedback
        refuses decisions of other routers. Snapshots keep it: a restored or unpickled router is
        the same router and accepts the decisions pending in its snapshot."""
        return self._core.identity

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
        learner, the random generator's state and the pending decisions. With ``contexts=``,
        also the prompt mapper: the fitted clusters, or during the warm-up the prompts and
        feedback collected so far (the only time prompts are kept)."""
        if self._mapper is not None:
            return self._mapper.snapshot(self._core.snapshot)
        return self._core.snapshot()

    @classmethod
    def restore(
        cls,
        blob: bytes | bytearray | memoryview,
        *,
        models: Sequence[Model] | None = None,
        shared: RedisState | None = None,
        **options: Unpack[RouteKeywords],
    ) -> Router:
        """The router :meth:`snapshot` saved, identical in every future decision.

        Snapshots hold no backends (nor their API keys): give ``models`` (specs with the same
        names) and a ``scorer`` to route again; the other keyword arguments are
        :class:`Router`'s route options. Raises SnapshotError when the bytes are
        truncated, altered, of a newer format or otherwise invalid; nothing half-restored is
        ever returned.

        Snapshots (and pickles) hold no connection either: give ``shared`` to join a shared
        state again, as a worker restarted from its snapshot does. The snapshot then brings the
        configuration, the identity with its pending decisions and the generator, while the
        learned state is the shared one: it is replaced by the latest checkpoint and the events
        after it, exactly as for a new router, so the replicas still agree.
        """
        if not isinstance(blob, bytes | bytearray | memoryview):
            raise ArgumentTypeError(f"blob must be bytes, got {type(blob).__name__}")
        if shared is not None and not isinstance(shared, RedisState):
            raise ArgumentTypeError(f"shared must be a RedisState or None, got {shared!r}")
        blob = bytes(blob)
        mapper = None
        if is_wrapped(blob):
            blob, mapper = unwrap(blob)
        router = cls._from_core(_core.RouterCore.restore(blob), mapper)
        specs = {m.name: m for m in models or ()}
        unknown = sorted(set(specs) - set(router._models))
        if unknown:
            raise UnknownModelError(f"models not in the snapshot's pool: {unknown}")
        route_options = RouteOptions(**options)
        router._shared = None if shared is None else shared._attach(router._core)
        router._share_mapper()
        try:
            router._route_loop = router._build_route_loop(specs, route_options)
        except BaseException:
            if router._shared is not None:  # a refused router leaves no threads behind
                router._shared.close()
            raise
        return router

    @classmethod
    def _from_core(cls, core: _core.RouterCore, mapper: Mapper | None = None) -> Router:
        config = json.loads(core.config_json())
        router = cls.__new__(cls)
        router._core = core
        router._models = tuple(config["models"])
        router._default_context = config["default_context"]
        router._policy = policy_from_core(config["policy"])
        router._reward = Reward._from_core(config["reward"])
        router._route_loop = None
        router._log = None
        router._shared = None
        router._mapper = mapper
        router._bind_hot_path()
        return router

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`snapshot` to ``path`` atomically: a temporary file in the same folder,
        flushed and fsynced, then renamed over ``path`` (and the folder fsynced), so a crash
        leaves either the old file or the new one, never half of one. A symlink is written
        through (its target is replaced, the link kept); a folder, FIFO or device is refused
        with SnapshotError. Temporary files of killed saves are removed by the next save or
        load of the same path."""
        # The core writes the temporary file itself, without the GIL (see docs/performance.md).
        mapper = self._mapper
        if mapper is None:
            _savefile.write_atomically(path, self._core.write_snapshot)
            return
        _savefile.write_atomically(
            path,
            lambda temporary: mapper.snapshot(
                lambda attachment: self._core.write_snapshot(temporary, attachment)
            ),
        )

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        models: Sequence[Model] | None = None,
        shared: RedisState | None = None,
        **options: Unpack[RouteKeywords],
    ) -> Router:
        """The router :meth:`save` wrote to ``path`` (see :meth:`restore` for the arguments,
        ``shared`` included). A truncated, altered, empty or newer-version file raises
        SnapshotError."""
        _savefile.remove_stale_temporaries(path)
        return cls.restore(Path(path).read_bytes(), models=models, shared=shared, **options)

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        return (_restore, (self.snapshot(),))

    def __repr__(self) -> str:
        return (
            f"Router(models={list(self._models)!r}, policy={self._policy!r}, "
            f"contexts={len(self.contexts())}, pending={self.pending})"
        )


def _pool(models: Sequence[str | Model]) -> tuple[list[str], dict[str, Model]]:
    """Model names in order, and the specs of those given as :class:`Model`."""
    if isinstance(models, str) or not isinstance(models, Sequence):
        raise ConfigError(f"models must be a list of model names or Model specs, got {models!r}")
    names: list[str] = []
    specs: dict[str, Model] = {}
    for model in models:
        if isinstance(model, Model):
            specs[model.name] = model
            names.append(model.name)
        elif isinstance(model, str):
            names.append(model)
        else:
            raise ConfigError(f"models must hold model names (str) or Model specs, got {model!r}")
    return names, specs


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


def _open_log(
    decision_log: str | os.PathLike[str] | DecisionLog | None, router: Router
) -> DecisionLog | None:
    if decision_log is None:
        return None
    if isinstance(decision_log, str | os.PathLike):
        decision_log = DecisionLog(decision_log)
    if not isinstance(decision_log, DecisionLog):
        raise ArgumentTypeError(
            f"decision_log must be a folder path or a DecisionLog, got {decision_log!r}"
        )
    decision_log.start(router.models, router.policy.model_dump(), router.reward.model_dump())
    return decision_log
