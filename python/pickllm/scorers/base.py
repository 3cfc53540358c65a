"""What a scorer is: the protocols, score validation, and the adapter the router calls.

A scorer grades one answer: it gets the prompt, the model's response and an optional reference
answer, and returns an accuracy in [0, 1]. Three shapes are accepted wherever pickllm takes a
scorer, and :func:`as_scorer` turns any of them into one :class:`ScorerAdapter` with both a sync
``score`` and an async ``ascore``, each checking the value it returns:

* an object with ``score(prompt, response, reference=None) -> float`` (:class:`Scorer`),
* an object with ``async ascore(prompt, response, reference=None) -> float``
  (:class:`AsyncScorer`), or both methods,
* a plain function, sync or ``async def``, called positionally as ``fn(prompt, response,
  reference)``. A ``bool`` result counts as 1.0 or 0.0, so predicates work as they are.

>>> from pickllm.scorers import as_scorer
>>> contains = as_scorer(lambda prompt, response, reference: reference in response)
>>> contains.score("Capital of France?", "It is Paris.", "Paris")
1.0
"""

from __future__ import annotations

import asyncio
import inspect
import math
import numbers
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeAlias, cast, runtime_checkable

import anyio

from pickllm.scorers.errors import (
    InvalidScoreError,
    MissingReferenceError,
    ScorerError,
    ScorerTimeoutError,
)

__all__ = [
    "AsyncScoreFunction",
    "AsyncScorer",
    "ScoreFunction",
    "Scorer",
    "ScorerAdapter",
    "ScorerLike",
    "as_scorer",
    "require_reference",
    "validate_score",
]


@runtime_checkable
class Scorer(Protocol):
    """A synchronous scorer: returns the response's accuracy in [0, 1]."""

    def score(self, prompt: str, response: str, reference: str | None = None) -> float:
        """Grade ``response`` to ``prompt``, against ``reference`` when the scorer needs one."""
        ...


@runtime_checkable
class AsyncScorer(Protocol):
    """An asynchronous scorer, for scorers that wait on I/O (an embeddings API, an LLM judge)."""

    async def ascore(self, prompt: str, response: str, reference: str | None = None) -> float:
        """Grade ``response`` to ``prompt``, against ``reference`` when the scorer needs one."""
        ...


#: A plain function used as a scorer, called as ``fn(prompt, response, reference)``.
ScoreFunction: TypeAlias = Callable[[str, str, str | None], float]
#: An ``async def`` function used as a scorer, called as ``await fn(prompt, response, reference)``.
AsyncScoreFunction: TypeAlias = Callable[[str, str, str | None], Awaitable[float]]
#: Everything :func:`as_scorer` accepts.
ScorerLike: TypeAlias = Scorer | AsyncScorer | ScoreFunction | AsyncScoreFunction

_SyncImpl: TypeAlias = Callable[[str, str, str | None], object]
_AsyncImpl: TypeAlias = Callable[[str, str, str | None], Awaitable[object]]


def validate_score(value: object, *, scorer: str = "scorer") -> float:
    """Return ``value`` as a float if it is a finite number in [0, 1], else raise.

    ``bool`` is accepted as 1.0 / 0.0, and any :class:`numbers.Real` (numpy scalars included) is
    converted. NaN, infinities, values outside [0, 1] and non-numbers raise
    :class:`~pickllm.scorers.InvalidScoreError`, whose message names the scorer and the value: a
    bad score must never reach the learner, where one NaN would poison every probability.

    >>> validate_score(0.25)
    0.25
    >>> validate_score(True)
    1.0
    >>> try:
    ...     validate_score(float("nan"), scorer="my_scorer")
    ... except InvalidScoreError as exc:
    ...     print(exc)
    my_scorer returned nan: a score must be a finite number in [0, 1]
    """
    if not isinstance(value, numbers.Real):
        raise InvalidScoreError(
            f"{scorer} returned {value!r} of type {type(value).__name__}: "
            "a score must be a finite number in [0, 1]"
        )
    result = float(value)
    if not math.isfinite(result) or not 0.0 <= result <= 1.0:
        raise InvalidScoreError(
            f"{scorer} returned {result!r}: a score must be a finite number in [0, 1]"
        )
    return result


def require_reference(reference: str | None, *, scorer: str) -> str:
    """Return ``reference``, or raise :class:`MissingReferenceError` naming ``scorer`` if None."""
    if reference is None:
        raise MissingReferenceError(
            f"{scorer} compares the response to a reference answer, but reference is None: "
            "pass reference=... with the query"
        )
    return reference


def _name_of(obj: object) -> str:
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    return str(name) if name else type(obj).__name__


def _is_async_callable(obj: object) -> bool:
    # iscoroutinefunction sees through functools.partial; an object whose __call__ is async
    # needs the second check.
    return inspect.iscoroutinefunction(obj) or inspect.iscoroutinefunction(
        getattr(obj, "__call__", None)  # noqa: B004 - we want the method, not callable()
    )


class ScorerAdapter:
    """Any accepted scorer shape behind one sync ``score`` and one async ``ascore``.

    Built by :func:`as_scorer`; the router holds one and calls ``score`` from ``route`` and
    ``ascore`` from ``aroute``. Both validate the result with :func:`validate_score`.

    How the missing half is filled in:

    * a sync-only scorer's ``ascore`` calls ``score`` inline, on the event loop. Reference-based
      scorers take microseconds, far less than a hop to a worker thread; a scorer that blocks on
      I/O should provide ``ascore`` (or be an ``async def`` function) instead.
    * an async-only scorer's ``score`` runs it with :func:`asyncio.run` when no event loop runs in
      the calling thread, and raises :class:`~pickllm.scorers.ScorerError` when one does (blocking
      a running loop on itself would deadlock): use ``aroute`` there.

    >>> async def judge(prompt, response, reference):
    ...     return 0.5
    >>> adapter = as_scorer(judge)
    >>> adapter.score("q", "a")
    0.5
    >>> import asyncio
    >>> asyncio.run(adapter.ascore("q", "a"))
    0.5
    """

    __slots__ = ("_async", "_sync", "name", "wrapped")

    def __init__(
        self,
        wrapped: object,
        *,
        sync: _SyncImpl | None,
        async_: _AsyncImpl | None,
        name: str,
    ) -> None:
        if sync is None and async_ is None:
            raise ScorerError(f"{name}: a scorer needs a sync or an async implementation")
        self.wrapped = wrapped
        self.name = name
        self._sync = sync
        self._async = async_

    def __repr__(self) -> str:
        return f"ScorerAdapter({self.name})"

    def score(
        self,
        prompt: str,
        response: str,
        reference: str | None = None,
        *,
        deadline: float | None = None,
    ) -> float:
        """Grade synchronously; the result is validated to lie in [0, 1].

        With ``deadline`` (a :func:`time.monotonic` instant) a grade must be ready by then, or
        :class:`~pickllm.scorers.ScorerTimeoutError` is raised: an async implementation is
        cancelled at it; a sync one cannot be interrupted, so its grade, once late, is refused.
        """
        _time_left(self.name, deadline)
        if self._sync is not None:
            value = self._sync(prompt, response, reference)
            if inspect.isawaitable(value):
                # A plain function that turned out to return a coroutine (a lambda around an
                # async call, say): run it rather than score the coroutine object.
                value = self._run_blocking(cast(Awaitable[object], value), deadline)
        else:
            assert self._async is not None
            impl = self._async
            self._refuse_inside_loop()
            value = asyncio.run(_awaited(impl(prompt, response, reference), self.name, deadline))
        _in_time(self.name, deadline)
        return validate_score(value, scorer=self.name)

    async def ascore(
        self,
        prompt: str,
        response: str,
        reference: str | None = None,
        *,
        deadline: float | None = None,
    ) -> float:
        """Grade asynchronously; the result is validated to lie in [0, 1]. ``deadline`` as in
        :meth:`score` (a sync implementation runs inline, so it too can only be refused late).
        """
        _time_left(self.name, deadline)
        if self._async is not None:
            value = await _awaited(self._async(prompt, response, reference), self.name, deadline)
        else:
            assert self._sync is not None
            value = self._sync(prompt, response, reference)
            if inspect.isawaitable(value):
                value = await _awaited(cast(Awaitable[object], value), self.name, deadline)
        _in_time(self.name, deadline)
        return validate_score(value, scorer=self.name)

    def _refuse_inside_loop(self) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        raise ScorerError(
            f"{self.name} is async-only and was called synchronously inside a running event "
            "loop; call ascore (Router.aroute) instead"
        )

    def _run_blocking(self, awaitable: Awaitable[object], deadline: float | None) -> object:
        try:
            self._refuse_inside_loop()
        except ScorerError:
            # Close the coroutine so it is not reported as never awaited.
            close = getattr(awaitable, "close", None)
            if close is not None:
                close()
            raise
        return asyncio.run(_awaited(awaitable, self.name, deadline))


async def _awaited(awaitable: Awaitable[object], name: str, deadline: float | None) -> object:
    """Await a grade, cancelled at ``deadline`` (None: no limit)."""
    if deadline is None:
        return await awaitable
    with anyio.move_on_after(deadline - time.monotonic()):
        return await awaitable
    raise ScorerTimeoutError(f"{name} did not grade by the deadline: cancelled at it")


def _time_left(name: str, deadline: float | None) -> None:
    """Refuse to start a grade that could only come too late."""
    if deadline is not None and time.monotonic() >= deadline:
        raise ScorerTimeoutError(f"{name} was not called: no time left before the deadline")


def _in_time(name: str, deadline: float | None) -> None:
    """Refuse a grade that came after the deadline (a sync scorer cannot be interrupted)."""
    if deadline is not None and time.monotonic() > deadline:
        raise ScorerTimeoutError(f"{name} graded after the deadline: its grade is dropped")


def as_scorer(scorer: ScorerLike | ScorerAdapter) -> ScorerAdapter:
    """Adapt a scorer object or a plain (sync or async) function to a :class:`ScorerAdapter`.

    Objects with ``score`` and/or ``ascore`` methods are used through them, even if they are
    also callable. Anything else must be callable. An adapter is returned unchanged.

    >>> from pickllm.scorers import ExactMatch
    >>> as_scorer(ExactMatch()).score("Who wrote Hamlet?", "Shakespeare.", "shakespeare")
    1.0
    >>> try:
    ...     as_scorer(42)
    ... except ScorerError as exc:
    ...     print(exc)  # doctest: +ELLIPSIS
    42 is not a scorer: expected an object with score() or ascore(), or a function ...
    """
    if isinstance(scorer, ScorerAdapter):
        return scorer
    sync_method = getattr(scorer, "score", None)
    async_method = getattr(scorer, "ascore", None)
    if callable(sync_method) or callable(async_method):
        return ScorerAdapter(
            scorer,
            sync=sync_method if callable(sync_method) else None,
            async_=async_method if callable(async_method) else None,
            name=type(scorer).__name__,
        )
    if callable(scorer):
        name = _name_of(scorer)
        if _is_async_callable(scorer):
            return ScorerAdapter(scorer, sync=None, async_=cast(_AsyncImpl, scorer), name=name)
        return ScorerAdapter(scorer, sync=cast(_SyncImpl, scorer), async_=None, name=name)
    raise ScorerError(
        f"{scorer!r} is not a scorer: expected an object with score() or ascore(), "
        "or a function (prompt, response, reference) -> float"
    )
