"""The event format: versioned JSON, round-trips exactly, refuses anything else."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pickllm.state import SharedStateError
from pickllm.state.events import Event, decode, encode

events = st.builds(
    Event,
    replica=st.just("r"),
    seq=st.integers(1, 2**63),
    context=st.text(),
    model=st.text(min_size=1),
    accuracy=st.floats(0, 1),
    cost=st.floats(0, 1e6),
    latency=st.floats(0, 1e6),
    reward=st.floats(0, 1),
    probability=st.one_of(st.none(), st.floats(0, 1, exclude_min=True)),
)


@given(st.text(), st.lists(events))
def test_round_trip(replica: str, batch: list[Event]) -> None:
    decoded = decode(encode(replica, [e.fields for e in batch]))
    assert decoded == (replica, [list(e.fields) for e in batch])
    assert [Event("r", *item) for item in decoded[1]] == batch


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"[]",
        b'{"v": 2, "r": "a", "e": []}',
        b'{"v": 1, "r": "a"}',
        b'{"v": 1, "r": 3, "e": []}',
        b'{"v": 1, "r": "a", "e": {}}',
        pickle.dumps({"v": 1, "r": "a", "e": []}),
    ],
)
def test_refuses_what_is_not_an_event(raw: bytes) -> None:
    with pytest.raises(SharedStateError):
        decode(raw)
