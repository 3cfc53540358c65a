"""Parse and check one value of a data file (internal, shared by every loader)."""

from __future__ import annotations

import csv
import math
import sys


class BadValueError(Exception):
    """A value that makes its row malformed; ``reason`` is the report's counting key."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def number(value: object, name: str) -> float | None:
    """``value`` as a float; None when blank (empty, None, NaN); BadValueError when not a number.

    NaN counts as blank because that is how pandas writes a missing cell (an empty CSV field, a
    NaN in a DataFrame). Infinities and booleans are errors: no outcome is infinite, and a bool is
    more likely a wrong column than a score.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise BadValueError(f"{name}_not_a_number", f"{name} is a boolean: {value!r}")
    if isinstance(value, int | float):
        result = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            result = float(text)
        except ValueError:
            raise BadValueError(
                f"{name}_not_a_number", f"{name} is not a number: {_short(value)}"
            ) from None
    else:
        # numpy scalars (from a DataFrame) are not int/float but convert losslessly.
        try:
            result = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise BadValueError(
                f"{name}_not_a_number", f"{name} is not a number: {_short(value)}"
            ) from None
    if math.isnan(result):
        return None
    if math.isinf(result):
        raise BadValueError(f"{name}_not_finite", f"{name} is not finite: {_short(value)}")
    return result


def check_unit(value: float, name: str) -> float:
    """Accuracy-like values must lie in [0, 1]."""
    if not 0.0 <= value <= 1.0:
        raise BadValueError(f"{name}_out_of_range", f"{name} {value!r} is outside [0, 1]")
    return value


def check_nonnegative(value: float, name: str) -> float:
    """Cost, latency and token counts cannot be negative."""
    if value < 0.0:
        raise BadValueError(f"{name}_negative", f"{name} {value!r} is negative")
    return value


def raise_csv_field_limit() -> None:
    """Let the csv module read RouterBench's huge fields (prompts of several hundred KB).

    The default limit is 128 KiB. The limit is process-wide, so it is only ever raised, never
    lowered or restored: restoring it could break another thread reading a big file meanwhile.
    The cap is the largest C long on every platform (sys.maxsize overflows it on Windows).
    """
    wanted = min(sys.maxsize, 2**31 - 1)
    if csv.field_size_limit() < wanted:
        csv.field_size_limit(wanted)
