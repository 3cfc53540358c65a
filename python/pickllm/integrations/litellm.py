"""pickllm inside LiteLLM: a routing strategy for ``litellm.Router`` and the logger that feeds
the outcomes back. Needs the ``litellm`` extra (``pip install ".[litellm]"`` in a clone).

:class:`PickLLMStrategy` picks, for each request to a model group it routes, one deployment of
that group with a :class:`pickllm.Router` whose model names are the deployments' ids
(``model_info.id``). :class:`PickLLMLogger` receives LiteLLM's success and failure events and
completes each decision: cost is LiteLLM's ``response_cost``, latency the call's duration, and
accuracy comes from a scorer, from :meth:`PickLLMStrategy.feedback` later (when the request
carried ``metadata={"pickllm_feedback_id": ...}``), or is the strategy's ``default_accuracy``.
A failed call is fed back as zero accuracy. Each decision is settled exactly once.

Usage::

    router = litellm.Router(model_list=[...])  # deployments with model_info ids "small", "large"
    strategy, logger = install(router, {"auto": pickllm.Router(["small", "large"])})
    await router.acompletion(model="auto", messages=[...],
                             metadata={"pickllm_context": "finance"})
"""

from __future__ import annotations

import logging
import secrets
import weakref
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from litellm.integrations.custom_logger import CustomLogger
from litellm.types.router import CustomRoutingStrategyBase

from pickllm._core import Decision
from pickllm.errors import ArgumentTypeError, ConfigError, DecisionError, UnknownModelError
from pickllm.gateway.feedback import FeedbackStore, Outcome, Pending
from pickllm.router import Router

__all__ = ["PickLLMLogger", "PickLLMStrategy", "install"]

logger = logging.getLogger("pickllm.integrations.litellm")

#: Request metadata keys pickllm reads (context, the caller's feedback id) and writes (decision).
CONTEXT_KEY = "pickllm_context"
FEEDBACK_ID_KEY = "pickllm_feedback_id"
DECISION_KEY = "pickllm_decision"

#: Grades an answer in [0, 1] from the request's messages and the answer's text.
Scorer = Callable[[Sequence[Mapping[str, Any]], str], float]


class PickLLMStrategy(CustomRoutingStrategyBase):
    """Picks deployments with pickllm routers, one per model group in ``routers``.

    Args:
        litellm_router: the ``litellm.Router`` whose ``model_list`` holds the deployments.
        routers: a pickllm Router per model group; its model names are deployment ids.
        default_accuracy: applied to a decision whose request carried no feedback id, or whose
            feedback did not come within ``feedback_timeout`` seconds (without a scorer).
        scorer: grades answers instead (then every decision is settled when it ends).
    """

    def __init__(
        self,
        litellm_router: Any,
        routers: Mapping[str, Router],
        *,
        default_accuracy: float = 0.5,
        feedback_timeout: float = 300.0,
        scorer: Scorer | None = None,
    ) -> None:
        if not 0.0 <= default_accuracy <= 1.0:
            raise ConfigError(f"default_accuracy must be in [0, 1], got {default_accuracy!r}")
        if not feedback_timeout > 0:
            raise ConfigError(f"feedback_timeout must be > 0, got {feedback_timeout!r}")
        self.litellm_router = litellm_router
        self.routers = dict(routers)
        for group, router in self.routers.items():
            if not isinstance(router, Router):
                raise ArgumentTypeError(f"routers[{group!r}] must be a pickllm.Router")
            ids = {_deployment_id(d) for d in self._deployments(group)}
            unknown = [m for m in router.models if m not in ids]
            if unknown:
                raise UnknownModelError(
                    f"routers[{group!r}] names {unknown}, which are not deployment ids "
                    f"(model_info.id) of model group {group!r}: {sorted(ids)}"
                )
        self.default_accuracy = default_accuracy
        self.feedback_timeout = feedback_timeout
        self.scorer = scorer
        self.store = FeedbackStore(self._settled)
        self._token = secrets.token_hex(6)
        self._count = 0

    def _deployments(self, group: str) -> list[dict[str, Any]]:
        registry = getattr(self.litellm_router, "registry", None)
        # LiteLLM 1.110 deprecates Router.model_list for registry().all() (same entries).
        model_list = registry().all() if registry is not None else self.litellm_router.model_list
        return [d for d in model_list if d.get("model_name") == group]

    # ==================== Picking ====================

    # LiteLLM's base class annotates None but documents (and uses) a model_list entry.
    async def async_get_available_deployment(  # type: ignore[override]
        self,
        model: str,
        messages: list[dict[str, str]] | None = None,
        input: str | list[object] | None = None,
        specific_deployment: bool | None = False,
        request_kwargs: dict[str, object] | None = None,
    ) -> dict[str, Any]:
        return self.get_available_deployment(
            model, messages, input, specific_deployment, request_kwargs
        )

    def get_available_deployment(  # type: ignore[override]
        self,
        model: str,
        messages: list[dict[str, str]] | None = None,
        input: str | list[object] | None = None,
        specific_deployment: bool | None = False,
        request_kwargs: dict[str, object] | None = None,
    ) -> dict[str, Any]:
        self.store.expire()
        deployments = self._deployments(model)
        if not deployments:
            raise UnknownModelError(f"no deployment of model group {model!r}")
        router = self.routers.get(model)
        if router is None:
            return deployments[0]  # a group pickllm does not route: its first deployment
        metadata = _metadata(request_kwargs)
        context = metadata.get(CONTEXT_KEY)
        # LiteLLM retries and falls back through this method: models it already tried for this
        # request are left out, as the gateway does.
        tried = metadata.get(DECISION_KEY + "_tried")
        tried_models = list(tried) if isinstance(tried, list) else []
        eligible = [m for m in router.models if m not in tried_models] or list(router.models)
        decision = router.select(context if isinstance(context, str) else None, allowed=eligible)
        gid = self._decision_id(metadata.get(FEEDBACK_ID_KEY))
        self.store.open(gid, model, decision)
        metadata[DECISION_KEY] = gid
        metadata[DECISION_KEY + "_tried"] = [*tried_models, decision.model]
        return next(d for d in deployments if _deployment_id(d) == decision.model)

    def _decision_id(self, feedback_id: object) -> str:
        if isinstance(feedback_id, str) and feedback_id:
            return feedback_id
        self._count += 1
        return f"dec-{self._token}-{self._count}"

    # ==================== Settling ====================

    def feedback(self, feedback_id: str, accuracy: float) -> None:
        """Apply the accuracy of the request that carried ``pickllm_feedback_id``; raises
        :class:`pickllm.DecisionError` for an unknown, expired or already settled id."""
        if isinstance(accuracy, bool) or not isinstance(accuracy, int | float):
            raise ArgumentTypeError(f"accuracy must be a number, got {accuracy!r}")
        if not 0.0 <= accuracy <= 1.0:
            raise ConfigError(f"accuracy must be in [0, 1], got {accuracy!r}")
        self.store.expire()
        self.store.feedback(feedback_id, float(accuracy))

    def succeeded(
        self,
        gid: str,
        cost: float,
        latency: float,
        text: str,
        messages: Sequence[Mapping[str, Any]],
        awaits_feedback: bool,
    ) -> None:
        pending = self.store.get(gid)
        if pending is None or pending.cost is not None:
            return
        self.store.answered(
            gid,
            cost=cost,
            latency=latency,
            timeout=self.feedback_timeout,
            default_accuracy=self.default_accuracy,
        )
        if self.scorer is not None:
            self.store.feedback(gid, self.scorer(messages, text))
        elif not awaits_feedback:
            self.store.feedback(gid, self.default_accuracy)

    def failed(self, gid: str, latency: float) -> None:
        pending = self.store.get(gid)
        if pending is None:
            return
        self.store.cancel(gid)
        self._apply(pending.router, pending.decision, 0.0, 0.0, latency)

    def _settled(self, pending: Pending, accuracy: float | None, outcome: Outcome) -> None:
        if accuracy is not None:
            self._apply(
                pending.router,
                pending.decision,
                accuracy,
                pending.cost or 0.0,
                pending.latency or 0.0,
            )

    def _apply(
        self, group: str, decision: Decision, accuracy: float, cost: float, latency: float
    ) -> None:
        try:
            self.routers[group].feedback(decision, accuracy=accuracy, cost=cost, latency=latency)
        except DecisionError as error:
            logger.warning("pickllm: feedback not applied: %s", error)


class PickLLMLogger(CustomLogger):
    """Feeds LiteLLM's outcomes back to the :class:`PickLLMStrategy` that made each decision.

    One instance serves every strategy (LiteLLM keeps one callback per class): :func:`install`
    puts it in ``litellm.callbacks`` once and adds each strategy to it."""

    def __init__(self) -> None:
        super().__init__()
        self.strategies: weakref.WeakSet[PickLLMStrategy] = weakref.WeakSet()

    def _owner(self, kwargs: dict[str, Any]) -> tuple[PickLLMStrategy, str] | None:
        metadata = _metadata(kwargs.get("litellm_params"))
        gid = metadata.get(DECISION_KEY)
        if isinstance(gid, str):
            for strategy in self.strategies:
                if strategy.store.get(gid) is not None:
                    return strategy, gid
        return None

    def log_success_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: datetime, end_time: datetime
    ) -> None:
        owner = self._owner(kwargs)
        if owner is None:
            return
        strategy, gid = owner
        metadata = _metadata(kwargs.get("litellm_params"))
        cost = kwargs.get("response_cost")
        strategy.succeeded(
            gid,
            cost=float(cost) if isinstance(cost, int | float) and cost >= 0 else 0.0,
            latency=_seconds(end_time - start_time),
            text=_answer_text(response_obj),
            messages=kwargs.get("messages") or [],
            awaits_feedback=isinstance(metadata.get(FEEDBACK_ID_KEY), str),
        )

    def log_failure_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: datetime, end_time: datetime
    ) -> None:
        owner = self._owner(kwargs)
        if owner is not None:
            owner[0].failed(owner[1], _seconds(end_time - start_time))

    async def async_log_success_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: datetime, end_time: datetime
    ) -> None:
        self.log_success_event(kwargs, response_obj, start_time, end_time)

    async def async_log_failure_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: datetime, end_time: datetime
    ) -> None:
        self.log_failure_event(kwargs, response_obj, start_time, end_time)


def install(
    litellm_router: Any, routers: Mapping[str, Router], **options: Any
) -> tuple[PickLLMStrategy, PickLLMLogger]:
    """Register a :class:`PickLLMStrategy` on ``litellm_router``, and the :class:`PickLLMLogger`
    in ``litellm.callbacks`` (once for every strategy); returns both. ``options`` go to the
    strategy."""
    import litellm

    strategy = PickLLMStrategy(litellm_router, routers, **options)
    litellm_router.register_plugin(strategy)
    feedback_logger = next((c for c in litellm.callbacks if isinstance(c, PickLLMLogger)), None)
    if feedback_logger is None:
        feedback_logger = PickLLMLogger()
        litellm.callbacks = [*litellm.callbacks, feedback_logger]
    feedback_logger.strategies.add(strategy)
    return strategy, feedback_logger


def _deployment_id(deployment: Mapping[str, Any]) -> str:
    info = deployment.get("model_info") or {}
    return str(info.get("id") or deployment.get("litellm_params", {}).get("model"))


def _metadata(holder: object) -> dict[str, Any]:
    """The request's metadata dict (created when absent, so that writes reach the logger)."""
    if not isinstance(holder, dict):
        return {}
    metadata = holder.get("metadata")
    if not isinstance(metadata, dict):
        metadata = {}
        holder["metadata"] = metadata
    return metadata


def _seconds(delta: object) -> float:
    if isinstance(delta, timedelta):
        return max(delta.total_seconds(), 0.0)
    if isinstance(delta, int | float):
        return max(float(delta), 0.0)
    return 0.0


def _answer_text(response: Any) -> str:
    try:
        return str(response.choices[0].message.content or "")
    except (AttributeError, IndexError, TypeError):
        return ""
