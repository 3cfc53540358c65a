"""Errors raised while reading replay data.

Both derive from :class:`pickllm.errors.PickLLMError`, so one ``except PickLLMError`` catches every
error pickllm raises. :class:`DataError` is also a :class:`ValueError` (the input is bad) and
:class:`OptionalDependencyError` an :class:`ImportError` (a feature needs a package that is not
installed), so callers that do not know pickllm keep working.

Example:
    >>> err = DataError("quality is not a number: 'abc'", path="a.csv", line=7, column="claude-v2")
    >>> str(err)
    "a.csv:7: column 'claude-v2': quality is not a number: 'abc'"
    >>> (err.path, err.line, err.column)
    ('a.csv', 7, 'claude-v2')
"""

from __future__ import annotations

from pickllm.errors import PickLLMError

__all__ = ["DataError", "OptionalDependencyError"]


class DataError(PickLLMError, ValueError):
    """Replay data that cannot be used: a malformed file, row or value, or an inconsistent table.

    ``path``, ``line`` (1-based; the physical line where a CSV record starts, or the row number of
    a DataFrame) and ``column`` locate the problem when known; the message starts with them in the
    ``path:line: column 'name':`` form editors and terminals link to.
    """

    def __init__(
        self,
        reason: str,
        *,
        path: str | None = None,
        line: int | None = None,
        column: str | None = None,
    ) -> None:
        self.reason = reason
        self.path = path
        self.line = line
        self.column = column
        super().__init__(_locate(reason, path, line, column))

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only arguments are not in self.args: without this a pickled DataError (e.g. sent
        # back from a worker process) would lose its location.
        return (_rebuild, (self.reason, self.path, self.line, self.column))


class OptionalDependencyError(PickLLMError, ImportError):
    """A feature needs an optional package (e.g. pandas for the RouterBench pickle)."""


def _rebuild(reason: str, path: str | None, line: int | None, column: str | None) -> DataError:
    return DataError(reason, path=path, line=line, column=column)


def _locate(reason: str, path: str | None, line: int | None, column: str | None) -> str:
    where = ""
    if path is not None:
        where = path if line is None else f"{path}:{line}"
        where += ": "
    elif line is not None:
        where = f"line {line}: "
    if column is not None:
        where += f"column {column!r}: "
    return where + reason
