"""One mixin for objects that hold connection pools and close them with ``close`` / ``aclose``."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Closing:
    """``with`` closes with :meth:`close`, ``async with`` with :meth:`aclose`."""

    __slots__ = ()  # so that subclasses with slots (Router) keep them

    def close(self) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
