"""OpenTelemetry spans of route() and aroute() against a real HTTP model farm, read back from
the SDK's InMemorySpanExporter: one route span, one span per attempt, one for the scorer, with
the GenAI semantic-convention attributes and pickllm's own."""

from __future__ import annotations

import anyio
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from model_farm import answer, fail, model_farm
from pickllm import AllModelsFailedError, LearningAutomaton, Model, OpenAICompatible, Router
from pickllm.scorers import MultipleChoice
from pickllm.tracing import OFF, RouteTrace, route_trace


def _router(url: str, names: list[str], prior: dict[str, float], *, scored: bool = True) -> Router:
    backend = OpenAICompatible(base_url=url, api_key="k")
    return Router(
        [Model(name, backend=backend, model_id=f"{name}-v1") for name in names],
        policy=LearningAutomaton(),
        prior=prior,
        scorer=MultipleChoice() if scored else None,
        breaker=None,
        seed=0,
    )


def _by_name(finished: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {span.name: span for span in finished}


def _check_fallback_trace(finished: tuple[ReadableSpan, ...], result_decision_id: int) -> None:
    spans = _by_name(finished)
    assert set(spans) == {"pickllm.route", "chat down-v1", "chat up-v1", "pickllm.score"}
    root, failed, answered, score = (
        spans[n] for n in ("pickllm.route", "chat down-v1", "chat up-v1", "pickllm.score")
    )
    assert root.parent is None
    for child in (failed, answered, score):
        assert child.parent is not None
        assert child.parent.span_id == root.context.span_id
        assert child.context.trace_id == root.context.trace_id
    assert failed.kind == answered.kind == SpanKind.CLIENT
    assert failed.status.status_code == StatusCode.ERROR
    assert failed.attributes is not None
    assert answered.attributes is not None
    assert failed.attributes["error.type"] == "ServerError"  # the HTTP 500
    assert failed.attributes["pickllm.attempt"] == 1
    assert failed.attributes["pickllm.model"] == "down"
    assert dict(answered.attributes) | {} == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "up-v1",
        "gen_ai.response.model": "up-v1",
        "gen_ai.usage.input_tokens": 12,
        "gen_ai.usage.output_tokens": 5,
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.response.id": answered.attributes["gen_ai.response.id"],
        "pickllm.context": "quiz",
        "pickllm.decision": result_decision_id,
        "pickllm.model": "up",
        "pickllm.probability": 1.0,  # the fallback: the only model left
        "pickllm.attempt": 2,
        "pickllm.cost_usd": 0.0,
    }
    assert score.attributes is not None
    assert score.attributes["pickllm.accuracy"] == 1.0
    assert root.attributes is not None
    assert root.attributes["pickllm.attempts"] == 2
    assert root.attributes["pickllm.decision"] == result_decision_id
    assert root.attributes["pickllm.model"] == "up"
    assert root.attributes["pickllm.accuracy"] == 1.0
    assert root.status.status_code == StatusCode.UNSET


BEHAVIOURS = {"down-v1": fail(500), "up-v1": answer("B")}  # by model_id
PRIOR = {"down": 1000.0, "up": 1.0}  # "down" first, then the fallback "up"


def test_route_records_a_span_per_query_attempt_and_scorer(spans: InMemorySpanExporter) -> None:
    with model_farm(BEHAVIOURS) as farm, _router(farm.url, ["down", "up"], PRIOR) as router:
        result = router.route("Which? A or B", context="quiz", reference="B")
    _check_fallback_trace(spans.get_finished_spans(), result.decision.id)


def test_aroute_records_the_same_spans(spans: InMemorySpanExporter) -> None:
    async def main() -> int:
        with model_farm(BEHAVIOURS) as farm:
            async with _router(farm.url, ["down", "up"], PRIOR) as router:
                result = await router.aroute("Which? A or B", context="quiz", reference="B")
        return result.decision.id

    decision_id = anyio.run(main)
    _check_fallback_trace(spans.get_finished_spans(), decision_id)


def test_without_a_scorer_neither_route_nor_aroute_records_a_score_span(
    spans: InMemorySpanExporter,
) -> None:
    with model_farm(BEHAVIOURS) as farm:
        with _router(farm.url, ["down", "up"], PRIOR, scored=False) as router:
            router.route("Which? A or B", context="quiz")
        synced = sorted(span.name for span in spans.get_finished_spans())
        spans.clear()

        async def main() -> None:
            async with _router(farm.url, ["down", "up"], PRIOR, scored=False) as router:
                await router.aroute("Which? A or B", context="quiz")

        anyio.run(main)
        awaited = sorted(span.name for span in spans.get_finished_spans())
    assert synced == awaited == ["chat down-v1", "chat up-v1", "pickllm.route"]


def test_a_query_every_model_failed_ends_its_span_with_the_error(
    spans: InMemorySpanExporter,
) -> None:
    with (
        model_farm({"a-v1": fail(500), "b-v1": fail(500)}) as farm,
        _router(farm.url, ["a", "b"], {"a": 1.0, "b": 1.0}) as router,
        pytest.raises(AllModelsFailedError),
    ):
        router.route("Which? A or B", context="quiz", reference="B")
    spans_by_name = _by_name(spans.get_finished_spans())
    assert set(spans_by_name) == {"pickllm.route", "chat a-v1", "chat b-v1"}
    root = spans_by_name["pickllm.route"]
    assert root.status.status_code == StatusCode.ERROR
    assert root.attributes is not None
    assert root.attributes["error.type"] == "AllModelsFailedError"


def test_without_a_provider_nothing_is_traced(
    spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert isinstance(route_trace("x"), RouteTrace)  # the module's provider
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)  # as before anyone configured one
    assert route_trace("x") is OFF
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", trace.NoOpTracerProvider())
    assert route_trace("x") is OFF
