"""A backend for tests that records the arguments of every call: the tests' one implementation
of the backend protocol's calls (:class:`pickllm.backends.base.Completer`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pickllm.backends import Completion, Message


@dataclass(frozen=True)
class Call:
    """The arguments of one call to a backend."""

    messages: list[Message]
    model: str
    max_tokens: int | None
    temperature: float | None
    stream: bool

    def options(self) -> dict[str, Any]:
        """The call's keyword arguments, to make the same call to another backend."""
        return {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "stream": self.stream,
        }


class RecordingBackend:
    """A structural Backend (no base class) that keeps every call in ``calls``; a subclass says
    what it answers (:meth:`answer`, and :meth:`aanswer` for async calls, the same by default)."""

    def __init__(self) -> None:
        self.calls: list[Call] = []

    def complete(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        max_tokens: int | None = None,
        temperature: float | None = None,
        stream: bool = False,
    ) -> Completion:
        call = Call(list(messages), model, max_tokens, temperature, stream)
        self.calls.append(call)
        return self.answer(call)

    async def acomplete(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        max_tokens: int | None = None,
        temperature: float | None = None,
        stream: bool = False,
    ) -> Completion:
        call = Call(list(messages), model, max_tokens, temperature, stream)
        self.calls.append(call)
        return await self.aanswer(call)

    def answer(self, call: Call) -> Completion:
        raise NotImplementedError

    async def aanswer(self, call: Call) -> Completion:
        return self.answer(call)

    def close(self) -> None:
        pass

    async def aclose(self) -> None:
        pass
