"""OpenTelemetry traces of routed queries (the ``otel`` extra: ``pip install 'pickllm[otel]'``).

When the application has configured a tracer provider (``trace.set_tracer_provider``, or
``opentelemetry-instrument``, which sets one up from the ``OTEL_*`` variables with the OTLP
exporter), every :meth:`Router.route` / :meth:`Router.aroute` records:

* a ``pickllm.route`` span (kind INTERNAL, a child of whatever span is current) with the final
  decision and its outcome;
* one ``chat <model>`` span (kind CLIENT) per attempt, named and attributed after the
  OpenTelemetry GenAI semantic conventions (``gen_ai.operation.name``, ``gen_ai.provider.name``
  and the older ``gen_ai.system``, ``gen_ai.request.model``, ``gen_ai.response.model``,
  ``gen_ai.usage.input_tokens``, ``gen_ai.usage.output_tokens``, ``error.type``) plus pickllm's
  own (``pickllm.context``, ``pickllm.decision``, ``pickllm.model``, ``pickllm.probability``,
  ``pickllm.attempt``, ``pickllm.cost_usd``);
* one ``pickllm.score`` span around the scorer, with the grade (``pickllm.accuracy``).

Without a provider nothing is imported and nothing recorded: :func:`route_trace` returns a
shared object whose methods do nothing (the check is a few dictionary lookups), so a router
costs what it did (``benches/tracing_overhead.py`` measures the ratio; docs/performance.md).
The attribute names are constants below.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from pickllm._core import Decision
    from pickllm.backends.base import Completion
    from pickllm.routing import RouteResult

__all__ = ["OFF", "TRACER_NAME", "RouteTrace", "provider_of", "route_trace"]

#: The name of pickllm's tracer (the instrumentation scope).
TRACER_NAME: Final = "pickllm"

CONTEXT: Final = "pickllm.context"
DECISION: Final = "pickllm.decision"
MODEL: Final = "pickllm.model"
PROBABILITY: Final = "pickllm.probability"
ATTEMPT: Final = "pickllm.attempt"
ATTEMPTS: Final = "pickllm.attempts"
COST: Final = "pickllm.cost_usd"
ACCURACY: Final = "pickllm.accuracy"
REWARD: Final = "pickllm.reward"
ROUTER: Final = "pickllm.router"


class _Off:
    """What :func:`route_trace` returns without a tracer provider: every call does nothing."""

    __slots__ = ()

    def attempt(self, decision: Decision, attempt: int, provider: str, model_id: str) -> _Off:
        return self

    def answered(self, completion: Completion, cost: float) -> None:
        pass

    def failed(self, error: BaseException) -> None:
        pass

    def scoring(self) -> _Off:
        return self

    def graded(self, accuracy: float | None) -> None:
        pass

    def routed(self, result: RouteResult) -> None:
        pass

    def end(self, error: BaseException | None = None) -> None:
        pass

    def __enter__(self) -> _Off:
        return self

    def __exit__(self, kind: object, error: object, traceback: object) -> None:
        pass


OFF: Final = _Off()
_UNKNOWN: Final = object()
#: Whether opentelemetry will load a provider named by this variable when none was set in
#: code: read once (an environment lookup costs more than the rest of the check).
_PROVIDER_FROM_ENVIRONMENT: Final = "OTEL_PYTHON_TRACER_PROVIDER" in os.environ

#: ``gen_ai.provider.name`` of pickllm's backends (another backend: its class name).
_PROVIDERS: Final = {"OpenAICompatible": "openai", "Anthropic": "anthropic"}


def provider_of(backend: object) -> str:
    """The GenAI convention's provider name for ``backend``."""
    name = type(backend).__name__
    return _PROVIDERS.get(name, name.lower())


def route_trace(context: str | None, router: str | None = None) -> RouteTrace | _Off:
    """A trace of one routed query, or :data:`OFF` when no tracer provider is configured."""
    module = sys.modules.get("opentelemetry.trace")
    if module is None:  # never imported: nobody can have configured a provider
        return OFF
    # The global a configured provider sits in, read directly: get_tracer_provider() looks up
    # an environment variable on every call while none is set (microseconds per route).
    provider = module.__dict__.get("_TRACER_PROVIDER", _UNKNOWN)
    if provider is None and not _PROVIDER_FROM_ENVIRONMENT:
        return OFF
    if provider is None or provider is _UNKNOWN:
        provider = module.get_tracer_provider()
    if isinstance(provider, (module.ProxyTracerProvider, module.NoOpTracerProvider)):
        return OFF
    return RouteTrace(module, provider.get_tracer(TRACER_NAME), context, router)


class _Span:
    """One attempt's or the scorer's span."""

    __slots__ = ("_ended", "_module", "span")

    def __init__(self, module: Any, span: Any) -> None:
        self._module, self.span = module, span
        self._ended = False

    def answered(self, completion: Completion, cost: float) -> None:
        usage = completion.usage
        attributes: dict[str, Any] = {
            "gen_ai.response.model": completion.model,
            "gen_ai.usage.input_tokens": usage.input_tokens,
            "gen_ai.usage.output_tokens": usage.output_tokens,
            COST: cost,
        }
        if completion.finish_reason is not None:
            attributes["gen_ai.response.finish_reasons"] = [completion.finish_reason]
        if completion.response_id is not None:
            attributes["gen_ai.response.id"] = completion.response_id
        self.span.set_attributes(attributes)

    def failed(self, error: BaseException) -> None:
        self.span.set_attribute("error.type", type(error).__name__)
        self.span.record_exception(error)
        self.span.set_status(self._module.Status(self._module.StatusCode.ERROR, str(error)))

    def graded(self, accuracy: float | None) -> None:
        if accuracy is not None:
            self.span.set_attribute(ACCURACY, accuracy)

    def end(self, error: BaseException | None = None) -> None:
        if self._ended:  # the SDK warns of a second end
            return
        self._ended = True
        if error is not None:
            self.failed(error)
        self.span.end()

    def __enter__(self) -> _Span:
        return self

    def __exit__(self, kind: object, error: BaseException | None, traceback: object) -> None:
        self.end(error if isinstance(error, Exception) else None)


class RouteTrace:
    """The spans of one routed query (see the module's doc)."""

    def __init__(self, module: Any, tracer: Any, context: str | None, router: str | None) -> None:
        self._module = module
        self._tracer = tracer
        attributes: dict[str, Any] = {"gen_ai.operation.name": "chat"}
        if context is not None:
            attributes[CONTEXT] = context
        if router is not None:
            attributes[ROUTER] = router
        self.span = tracer.start_span("pickllm.route", attributes=attributes)
        self._parent = module.set_span_in_context(self.span)
        self._attempts = 0
        self._ended = False

    def attempt(self, decision: Decision, attempt: int, provider: str, model_id: str) -> _Span:
        """The span of one call to ``decision``'s model (the ``attempt``-th of the query)."""
        self._attempts = attempt
        span = self._tracer.start_span(
            f"chat {model_id}",
            context=self._parent,
            kind=self._module.SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": provider,
                "gen_ai.system": provider,
                "gen_ai.request.model": model_id,
                CONTEXT: decision.context,
                DECISION: decision.id,
                MODEL: decision.model,
                PROBABILITY: decision.probability,
                ATTEMPT: attempt,
            },
        )
        return _Span(self._module, span)

    def scoring(self) -> _Span:
        return _Span(self._module, self._tracer.start_span("pickllm.score", context=self._parent))

    def routed(self, result: RouteResult) -> None:
        decision = result.decision
        attributes: dict[str, Any] = {
            CONTEXT: decision.context,
            DECISION: decision.id,
            MODEL: decision.model,
            PROBABILITY: decision.probability,
            ATTEMPTS: len(result.attempts),
            COST: result.cost,
            "gen_ai.usage.input_tokens": result.input_tokens,
            "gen_ai.usage.output_tokens": result.output_tokens,
        }
        if result.accuracy is not None:
            attributes[ACCURACY] = result.accuracy
        if result.reward is not None:
            attributes[REWARD] = result.reward
        self.span.set_attributes(attributes)

    def end(self, error: BaseException | None = None) -> None:
        """End the route's span; with ``error``, the query failed with it."""
        if self._ended:
            return
        self._ended = True
        if error is not None:
            self.span.set_attribute(ATTEMPTS, self._attempts)
            _Span(self._module, self.span).failed(error)
        self.span.end()

    def __enter__(self) -> RouteTrace:
        return self

    def __exit__(self, kind: object, error: BaseException | None, traceback: object) -> None:
        self.end(error)  # whatever left the block: a cancellation fails the query too
