"""OpenTelemetry spans of the gateway's routed requests: the spans of :mod:`pickllm.tracing`
(``pickllm.route`` per request, a ``chat <model id>`` client span per attempt, with the same
GenAI and ``pickllm.*`` attributes), recorded only when a tracer provider is configured (run
``pickllm serve`` under ``opentelemetry-instrument``, or configure one before creating the app).

The gateway's route loop settles each attempt exactly once (answered, failed or abandoned), so
an attempt's span is opened with its decision and ended where the gateway settles it, by
decision id. The route span covers the routing up to the response (a streamed answer's attempt
span ends with the stream). The gateway's judge grades later, outside the request: no scorer
span.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING

from pickllm.tracing import RouteTrace, _Off, _Span, route_trace

if TYPE_CHECKING:
    from pickllm._core import Decision

__all__ = ["GatewayTraces"]

_CURRENT: ContextVar[RouteTrace | None] = ContextVar("pickllm_gateway_trace", default=None)


class GatewayTraces:
    """The open spans of one gateway worker's routed requests."""

    def __init__(self) -> None:
        self._attempts: dict[str, _Span] = {}

    @contextlib.contextmanager
    def request(self, context: str | None, router: str) -> Iterator[None]:
        """The ``pickllm.route`` span of one routed request (nothing without a provider)."""
        trace = route_trace(context, router)
        if isinstance(trace, _Off):
            yield
            return
        token = _CURRENT.set(trace)
        try:
            with trace:
                yield
        finally:
            _CURRENT.reset(token)

    def attempt(self, gid: str, decision: Decision, attempt: int, model_id: str) -> None:
        """Open the span of attempt ``gid`` (a child of the request's route span)."""
        trace = _CURRENT.get()
        if trace is not None:
            self._attempts[gid] = trace.attempt(decision, attempt, "openai", model_id)

    def answered(
        self, gid: str, input_tokens: int, output_tokens: int, model: str, cost: float
    ) -> None:
        span = self._attempts.pop(gid, None)
        if span is not None:
            span.span.set_attributes(
                {
                    "gen_ai.response.model": model,
                    "gen_ai.usage.input_tokens": input_tokens,
                    "gen_ai.usage.output_tokens": output_tokens,
                    "pickllm.cost_usd": cost,
                }
            )
            span.end()

    def failed(self, gid: str, error: BaseException | None) -> None:
        """The attempt failed with ``error``, or was abandoned (``None``)."""
        span = self._attempts.pop(gid, None)
        if span is not None:
            span.end(error)
