"""Unit and property tests of the pure parts: SSE decoding, Retry-After, token estimates."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pickllm.backends import (
    InvalidRequestError,
    Message,
    Usage,
    estimate_tokens,
    estimate_usage,
    parse_retry_after,
)
from pickllm.backends.base import validate_call
from pickllm.backends.sse import SSEDecoder, SSEEvent

# Field values: any text without line breaks (those end a line in an event stream).
# (U+2028, U+0085 and the like are allowed: only CR and LF end a line in an event stream.)
value_text = st.text(st.characters(blacklist_characters="\r\n", codec="utf-8"), max_size=30)
events = st.lists(
    st.tuples(
        st.text(st.characters(whitelist_categories=("Ll", "Lu")), min_size=1, max_size=12),
        st.lists(value_text, min_size=1, max_size=3),
    ),
    max_size=6,
)


def decode(data: bytes, cuts: list[int]) -> list[SSEEvent]:
    """Feed ``data`` in pieces cut at ``cuts`` (positions), as the network might deliver it."""
    decoder = SSEDecoder()
    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    events: list[SSEEvent] = []
    for start, end in itertools.pairwise(bounds):
        events.extend(decoder.feed_bytes(data[start:end]))
    assert decoder.flush() is False
    return events


@given(
    events,
    st.sampled_from(["\n", "\r\n", "\r"]),
    st.booleans(),
    st.booleans(),
    st.lists(st.integers(0, 10_000), max_size=8),
)
def test_sse_round_trip(
    items: list[tuple[str, list[str]]], newline: str, space: bool, bom: bool, cuts: list[int]
) -> None:
    sep = ": " if space else ":"
    text = "\ufeff" if bom else ""
    for name, lines in items:
        text += f"event{sep}{name}{newline}"
        text += "".join(f"data{sep}{line}{newline}" for line in lines)
        text += f": a comment{newline}{newline}"
    decoded = decode(text.encode(), cuts)
    expected = [
        # Without the optional space, a value's own leading space is the one the spec strips.
        SSEEvent(
            event=name,
            data="\n".join(
                line if space or not line.startswith(" ") else line[1:] for line in lines
            ),
        )
        for name, lines in items
    ]
    assert decoded == expected


def test_sse_keeps_unicode_line_separators_inside_data() -> None:
    # str.splitlines (and so httpx's iter_lines) would break these lines apart.
    data = 'data: {"text": "a\u2028b\u2029c\x85d\x0be\x1cf"}\n\n'.encode()
    assert decode(data, [3, 9, 10, 11]) == [
        SSEEvent(event="message", data='{"text": "a\u2028b\u2029c\x85d\x0be\x1cf"}')
    ]


def test_sse_spec_details() -> None:
    text = (
        "data\n\n"  # a field with no colon: empty data, still an event
        "data:  two spaces\nid: 7\nretry: 10\nunknown: x\n\n"
        "event: only-an-event-name\n\n"  # no data: not dispatched
        "data: last\n"  # no blank line after it
    )
    decoder = SSEDecoder()
    lines = text.splitlines()
    out = [e for e in (decoder.feed(line) for line in lines) if e is not None]
    assert out == [
        SSEEvent(event="message", data=""),
        SSEEvent(event="message", data=" two spaces", id="7"),
    ]
    assert decoder.flush() is True  # "data: last" was never completed
    assert decoder.flush() is False


@given(st.integers(0, 10**9))
def test_retry_after_seconds(seconds: int) -> None:
    assert parse_retry_after(str(seconds)) == float(seconds)
    assert parse_retry_after(f"  {seconds} ") == float(seconds)


@given(st.integers(0, 10**6))
def test_retry_after_http_date(offset: int) -> None:
    now = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
    header = format_datetime(now + timedelta(seconds=offset), usegmt=True)
    assert parse_retry_after(header, now=now) == float(offset)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past: no wait, not negative
        ("1.5", 1.5),
        ("-3", None),
        ("nan", None),
        ("inf", None),
        ("", None),
        (None, None),
        ("tomorrow", None),
        ("Wed, 99 Foo 2015 07:28:00 GMT", None),
    ],
)
def test_retry_after_edge_cases(value: str | None, expected: float | None) -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert parse_retry_after(value, now=now) == expected


@given(st.text(max_size=40))
def test_retry_after_never_raises(value: str) -> None:
    result = parse_retry_after(value)
    assert result is None or (math.isfinite(result) and result >= 0)


@given(st.text(max_size=200))
def test_estimate_tokens_is_ceil_of_quarter_length(text: str) -> None:
    assert estimate_tokens(text) == math.ceil(len(text) / 4)


def test_estimate_usage_fills_only_missing_counts() -> None:
    messages: list[Message] = [{"role": "user", "content": "x" * 8}]
    assert estimate_usage(messages, "y" * 5) == Usage(5, 2, estimated=True)
    assert estimate_usage(messages, "y", input_tokens=9) == Usage(9, 1, estimated=True)
    assert estimate_usage(messages, "y", input_tokens=9, output_tokens=0) == Usage(9, 0)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3", None])
def test_usage_rejects_bad_counts(bad: object) -> None:
    with pytest.raises(ValueError, match="input_tokens must be a non-negative integer"):
        Usage(bad, 1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("messages", "kwargs", "match"),
    [
        ([], {}, "messages must not be empty"),
        ("hello", {}, "messages must be a sequence"),
        ({"role": "user", "content": "x"}, {}, "messages must be a sequence"),
        (["hi"], {}, r"messages\[0\] must be a dict"),
        ([{"content": "x"}], {}, r"messages\[0\]\['role'\] must be a non-empty string"),
        ([{"role": "user", "content": 3}], {}, r"messages\[0\]\['content'\] must be a string"),
        ([{"role": "user", "content": "x"}], {"model": ""}, "model must be a non-empty string"),
        ([{"role": "user", "content": "x"}], {"max_tokens": 0}, "max_tokens must be a positive"),
        ([{"role": "user", "content": "x"}], {"max_tokens": True}, "max_tokens must be"),
        ([{"role": "user", "content": "x"}], {"temperature": math.nan}, "temperature must be"),
        ([{"role": "user", "content": "x"}], {"temperature": -0.1}, "temperature must be"),
    ],
)
def test_invalid_calls_are_refused(messages: object, kwargs: dict[str, object], match: str) -> None:
    args = {"model": "m", "max_tokens": None, "temperature": None, **kwargs}
    with pytest.raises(InvalidRequestError, match=match) as info:
        validate_call(messages, args["model"], args["max_tokens"], args["temperature"])  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)
