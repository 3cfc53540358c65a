"""The scorer protocol: score validation and the adaptation of objects and plain callables."""

from __future__ import annotations

import asyncio
import functools
import math
import time
from fractions import Fraction

import pytest

from pickllm.errors import PickLLMError
from pickllm.scorers import (
    AsyncScoreFunction,
    AsyncScorer,
    EmbeddingSimilarity,
    ExactMatch,
    InvalidScoreError,
    LLMJudge,
    MissingReferenceError,
    MultipleChoice,
    Scorer,
    ScorerAdapter,
    ScorerError,
    ScorerTimeoutError,
    TokenF1,
    as_scorer,
    require_reference,
    validate_score,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0.0),
        (1, 1.0),
        (0.5, 0.5),
        (True, 1.0),
        (False, 0.0),
        (Fraction(1, 4), 0.25),
        (5e-324, 5e-324),
    ],
)
def test_validate_score_accepts_finite_numbers_in_unit_interval(
    value: object, expected: float
) -> None:
    result = validate_score(value)
    assert result == expected
    assert type(result) is float


@pytest.mark.parametrize(
    "value",
    [math.nan, math.inf, -math.inf, -0.001, 1.0000001, 2, -1, "0.5", None, b"1", [0.5], 1j],
)
def test_validate_score_rejects_everything_else(value: object) -> None:
    with pytest.raises(InvalidScoreError, match=r"my_scorer returned .*finite number in \[0, 1\]"):
        validate_score(value, scorer="my_scorer")


def test_invalid_score_is_a_pickllm_value_error() -> None:
    with pytest.raises(PickLLMError):
        validate_score(math.nan)
    with pytest.raises(ValueError, match="nan"):
        validate_score(math.nan)


def test_require_reference() -> None:
    assert require_reference("x", scorer="S") == "x"
    assert require_reference("", scorer="S") == ""
    with pytest.raises(MissingReferenceError, match="S compares the response to a reference"):
        require_reference(None, scorer="S")


# -- callables -------------------------------------------------------------------------------


def overlap(prompt: str, response: str, reference: str | None) -> float:
    assert reference is not None
    return len(set(response) & set(reference)) / len(set(reference))


async def async_overlap(prompt: str, response: str, reference: str | None) -> float:
    await asyncio.sleep(0)
    return overlap(prompt, response, reference)


def test_sync_function_is_adapted_and_receives_arguments_in_order() -> None:
    seen: list[tuple[str, str, str | None]] = []

    def record(prompt: str, response: str, reference: str | None) -> float:
        seen.append((prompt, response, reference))
        return 0.75

    adapter = as_scorer(record)
    assert adapter.score("p", "r", "ref") == 0.75
    assert adapter.score("p2", "r2") == 0.75
    assert seen == [("p", "r", "ref"), ("p2", "r2", None)]
    assert (
        adapter.name
        == "test_sync_function_is_adapted_and_receives_arguments_in_order.<locals>.record"
    )


def test_sync_function_score_matches_direct_call() -> None:
    assert as_scorer(overlap).score("q", "ab", "abcd") == 0.5


@pytest.mark.anyio
async def test_sync_function_also_serves_ascore() -> None:
    assert await as_scorer(overlap).ascore("q", "abc", "abcd") == 0.75


@pytest.mark.anyio
async def test_async_function_is_awaited() -> None:
    adapter = as_scorer(async_overlap)
    assert await adapter.ascore("q", "a", "abcd") == 0.25


def test_async_function_from_sync_code_without_a_loop() -> None:
    assert as_scorer(async_overlap).score("q", "ab", "abcd") == 0.5


@pytest.mark.anyio
async def test_async_only_scorer_refuses_sync_call_inside_a_running_loop() -> None:
    with pytest.raises(ScorerError, match=r"async-only .* call ascore"):
        as_scorer(async_overlap).score("q", "a", "abcd")


# A deadline is a time.monotonic() instant. Each case below ends one way whatever the timing:
# a scorer that waits on an Event nobody sets ends only by the cancellation at the deadline, and
# one that sleeps longer than the time left returns after it.


def never_set_then_cancelled(cancelled: list[str]) -> AsyncScoreFunction:
    async def scorer(prompt: str, response: str, reference: str | None) -> float:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(prompt)
            raise
        return 1.0

    return scorer


def test_an_async_scorer_is_cancelled_at_its_deadline_from_sync_code() -> None:
    cancelled: list[str] = []
    adapter = as_scorer(never_set_then_cancelled(cancelled))
    with pytest.raises(ScorerTimeoutError, match="did not grade by the deadline"):
        adapter.score("q", "a", deadline=time.monotonic() + 0.01)
    assert cancelled == ["q"]


@pytest.mark.anyio
async def test_an_async_scorer_is_cancelled_at_its_deadline() -> None:
    cancelled: list[str] = []
    adapter = as_scorer(never_set_then_cancelled(cancelled))
    with pytest.raises(ScorerTimeoutError, match="did not grade by the deadline"):
        await adapter.ascore("q", "a", deadline=time.monotonic() + 0.01)
    assert cancelled == ["q"]
    # In time, the grade stands.
    deadline = time.monotonic() + 60
    assert await as_scorer(async_overlap).ascore("q", "a", "ab", deadline=deadline) == 0.5


@pytest.mark.anyio
async def test_a_sync_grade_after_the_deadline_is_dropped() -> None:
    def slow(prompt: str, response: str, reference: str | None) -> float:
        time.sleep(0.02)  # longer than the time left
        return 1.0

    adapter = as_scorer(slow)
    with pytest.raises(ScorerTimeoutError, match="graded after the deadline"):
        adapter.score("q", "a", deadline=time.monotonic() + 0.01)
    with pytest.raises(ScorerTimeoutError, match="graded after the deadline"):
        await adapter.ascore("q", "a", deadline=time.monotonic() + 0.01)
    assert adapter.score("q", "a", deadline=time.monotonic() + 60) == 1.0


@pytest.mark.anyio
async def test_no_scorer_is_called_once_its_deadline_has_passed() -> None:
    calls: list[str] = []

    def sync(prompt: str, response: str, reference: str | None) -> float:
        calls.append("sync")
        return 1.0

    async def async_(prompt: str, response: str, reference: str | None) -> float:
        calls.append("async")
        return 1.0

    past = time.monotonic()
    for adapter in (as_scorer(sync), as_scorer(async_)):
        with pytest.raises(ScorerTimeoutError, match="no time left"):
            await adapter.ascore("q", "a", deadline=past)
    with pytest.raises(ScorerTimeoutError, match="no time left"):
        as_scorer(sync).score("q", "a", deadline=past)
    assert calls == []
    assert issubclass(ScorerTimeoutError, ScorerError)


def test_partial_of_async_function_is_detected_as_async() -> None:
    async def weighted(weight: float, prompt: str, response: str, reference: str | None) -> float:
        return weight

    adapter = as_scorer(functools.partial(weighted, 0.3))
    assert adapter.score("q", "a", None) == 0.3


def test_object_with_async_call_is_detected_as_async() -> None:
    class Grader:
        async def __call__(self, prompt: str, response: str, reference: str | None) -> float:
            return 0.9

    assert as_scorer(Grader()).score("q", "a") == 0.9


@pytest.mark.anyio
async def test_lambda_returning_a_coroutine_is_awaited() -> None:
    adapter = as_scorer(lambda p, r, ref: async_overlap(p, r, ref))
    assert await adapter.ascore("q", "abcd", "abcd") == 1.0


def test_lambda_returning_a_coroutine_runs_from_sync_code() -> None:
    adapter = as_scorer(lambda p, r, ref: async_overlap(p, r, ref))
    assert adapter.score("q", "abcd", "abcd") == 1.0


@pytest.mark.anyio
async def test_lambda_returning_a_coroutine_inside_a_loop_is_refused_cleanly() -> None:
    # The coroutine is closed before the error, so no "never awaited" warning (an error here).
    adapter = as_scorer(lambda p, r, ref: async_overlap(p, r, ref))
    with pytest.raises(ScorerError, match="inside a running event loop"):
        adapter.score("q", "abcd", "abcd")


def test_predicates_returning_bool_count_as_zero_or_one() -> None:
    adapter = as_scorer(lambda p, r, ref: r == ref)
    assert adapter.score("q", "x", "x") == 1.0
    assert adapter.score("q", "x", "y") == 0.0


@pytest.mark.parametrize("bad", [math.nan, 1.5, -0.1, None, "1"])
def test_adapter_rejects_bad_values_from_sync_functions(bad: object) -> None:
    adapter = as_scorer(lambda p, r, ref: bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidScoreError, match="<lambda> returned"):
        adapter.score("q", "r")


@pytest.mark.anyio
@pytest.mark.parametrize("bad", [math.nan, math.inf, 7])
async def test_adapter_rejects_bad_values_from_async_functions(bad: float) -> None:
    async def broken(prompt: str, response: str, reference: str | None) -> float:
        return bad

    with pytest.raises(InvalidScoreError, match="broken returned"):
        await as_scorer(broken).ascore("q", "r")


# -- objects ---------------------------------------------------------------------------------


class SyncOnly:
    def score(self, prompt: str, response: str, reference: str | None = None) -> float:
        return 0.2


class AsyncOnly:
    async def ascore(self, prompt: str, response: str, reference: str | None = None) -> float:
        return 0.4


class Both:
    def score(self, prompt: str, response: str, reference: str | None = None) -> float:
        return 0.1

    async def ascore(self, prompt: str, response: str, reference: str | None = None) -> float:
        return 0.9

    def __call__(self, prompt: str, response: str, reference: str | None = None) -> float:
        return 0.5  # never used: the score methods take precedence


@pytest.mark.anyio
async def test_objects_are_used_through_their_methods() -> None:
    assert as_scorer(SyncOnly()).score("q", "r") == 0.2
    assert await as_scorer(SyncOnly()).ascore("q", "r") == 0.2
    assert await as_scorer(AsyncOnly()).ascore("q", "r") == 0.4
    assert as_scorer(Both()).score("q", "r") == 0.1
    assert await as_scorer(Both()).ascore("q", "r") == 0.9


def test_async_only_object_from_sync_code() -> None:
    assert as_scorer(AsyncOnly()).score("q", "r") == 0.4


def test_object_returning_nan_is_rejected_with_its_class_name() -> None:
    class NaNScorer:
        def score(self, prompt: str, response: str, reference: str | None = None) -> float:
            return math.nan

    with pytest.raises(InvalidScoreError, match="NaNScorer returned nan"):
        as_scorer(NaNScorer()).score("q", "r")


def test_adapter_is_returned_unchanged() -> None:
    adapter = as_scorer(SyncOnly())
    assert as_scorer(adapter) is adapter
    assert isinstance(adapter, ScorerAdapter)
    assert repr(adapter) == "ScorerAdapter(SyncOnly)"


@pytest.mark.parametrize("not_a_scorer", [42, "exact", None, object()])
def test_non_scorers_are_rejected(not_a_scorer: object) -> None:
    with pytest.raises(ScorerError, match="is not a scorer"):
        as_scorer(not_a_scorer)  # type: ignore[arg-type]


def test_builtins_satisfy_the_protocols() -> None:
    class NoBackend:
        pass

    sync_only: list[object] = [ExactMatch(), MultipleChoice(), TokenF1()]
    for scorer in sync_only:
        assert isinstance(scorer, Scorer)
        assert not isinstance(scorer, AsyncScorer)
    embedding = EmbeddingSimilarity("http://127.0.0.1:1/v1", model="m")
    judge = LLMJudge(NoBackend(), "m")  # type: ignore[arg-type]
    both: list[object] = [embedding, judge]
    for scorer in both:
        assert isinstance(scorer, Scorer)
        assert isinstance(scorer, AsyncScorer)
