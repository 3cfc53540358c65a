"""Attempts, the choreography shared by route() and the gateway: a real Router as the selector,
a real Health and Spending, and a hand-moved clock for the deadline (no calls are made: the
tests play the callers' part)."""

from __future__ import annotations

import pickle
from fractions import Fraction

import pytest

from pickllm import Budget, BudgetExceeded, CircuitBreaker, Router
from pickllm.attempts import AllModelsFailedError, Attempt, Attempts, DeadlinePassedError
from pickllm.budget import Spending
from pickllm.health import Health

#: Every call of these tests may cost this much (the prompt plays no part).
BOUND = 0.25


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def attempts(
    budget: Budget | None = None, breaker: CircuitBreaker | None = None, max_attempts: int = 3
) -> tuple[Router, Attempts[None], Clock]:
    router = Router(["a", "b", "c"], seed=7)
    clock = Clock()
    return (
        router,
        Attempts(
            router,
            Health(breaker, router.models),
            None if budget is None else Spending(budget),
            max_attempts,
            lambda model, prompt: BOUND,
            deadline_name="request deadline of 1 s",
            clock=clock,
        ),
        clock,
    )


def test_each_ticket_is_settled_once_whatever_is_called_after() -> None:
    router, calls, _ = attempts(Budget(total=1.0), CircuitBreaker(failures=1, cooldown=60.0))
    assert isinstance(calls.spending, Spending)
    answered = calls.next(None, None, [], None)
    calls.answered(answered, 0.125)
    calls.abandon(answered)  # the callers' `finally`: nothing left to release
    assert calls.failed(answered, "late", 0.1) is None  # no feedback, no breaker count
    assert calls.health.state(answered.decision.model) == "closed"
    assert calls.spending.spent() == Fraction(1, 8)
    assert calls.spending._reserved_total == 0
    assert router.pending == 1  # answered: its feedback (the accuracy) is the caller's

    failed = calls.next(None, None, [Attempt(answered.decision, "x")], None)
    assert calls.failed(failed, "HTTP 500", 0.5) is not None  # fed back as zero accuracy
    calls.abandon(failed)
    assert calls.health.state(failed.decision.model) == "open"  # counted once: failures=1
    assert calls.spending.spent() == Fraction(1, 8)  # the failure cost nothing
    assert calls.spending._reserved_total == 0
    assert router.pending == 1


def test_fallbacks_stop_at_max_attempts_with_every_attempt_listed() -> None:
    router, calls, _ = attempts(max_attempts=2)
    tried: list[Attempt] = []
    for _ in range(2):
        ticket = calls.next(None, None, tried, None)
        assert ticket.decision.model not in {a.model for a in tried}
        calls.failed(ticket, "HTTP 500", 0.1)
        tried.append(Attempt(ticket.decision, "HTTP 500"))
    with pytest.raises(AllModelsFailedError) as caught:
        calls.next(None, None, tried, None)
    assert type(caught.value) is AllModelsFailedError  # not the deadline's variant
    assert caught.value.attempts == tuple(tried)
    assert caught.value.message == "no model answered in 2 attempt(s) (max_attempts=2)"
    assert router.pending == 0


def test_no_attempt_starts_after_the_deadline() -> None:
    router, calls, clock = attempts()
    first = calls.next(None, None, [], clock.now + 1.0)
    calls.failed(first, "HTTP 500", 0.1)
    tried = [Attempt(first.decision, "HTTP 500")]
    clock.now += 1.0
    with pytest.raises(DeadlinePassedError) as caught:
        calls.next(None, None, tried, clock.now)
    assert caught.value.message == "the request deadline of 1 s passed after 1 attempt(s)"
    assert caught.value.attempts == tuple(tried)
    assert isinstance(pickle.loads(pickle.dumps(caught.value)), DeadlinePassedError)
    assert router.pending == 0  # no decision was made for the refused attempt


def test_the_budget_refuses_before_any_decision() -> None:
    router, calls, _ = attempts(Budget(per_context=BOUND * 1.5))
    ticket = calls.next("tenant", None, [], None)  # one bound fits, reserved
    with pytest.raises(BudgetExceeded, match=r"worst-case cost 0\.250000 USD exceeds"):
        calls.next("tenant", None, [], None)
    calls.abandon(ticket)
    assert router.pending == 1  # only the first decision, left to expire unanswered
    assert calls.next("tenant", None, [], None).reservation is not None  # released: fits again
