"""The event format: versioned JSON written in Python, read whole entries at a time by the core;
anything else (pickle, another version, wrong shapes) is refused."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pickllm import PickLLMError, Router
from pickllm.state.events import Fields, encode

MODELS = ["a", "b"]

fields = st.tuples(
    st.integers(1, 2**63),
    st.text(),
    st.sampled_from(MODELS),
    st.floats(0, 1),
    st.floats(0, 1e6),
    st.floats(0, 1e6),
    st.floats(0, 1),
    st.one_of(st.none(), st.floats(0, 1, exclude_min=True)),
)


@given(st.text(), st.lists(fields, max_size=50))
def test_what_python_writes_the_core_applies_like_observe(
    replica: str, events: list[Fields]
) -> None:
    events = sorted({e[0]: e for e in events}.values())  # one replica numbers events in order
    through_stream, direct = Router(MODELS, seed=1), Router(MODELS, seed=2)
    seen: dict[str, int] = {}
    assert through_stream._core.apply_entry(encode(replica, events), seen) == (len(events), 0)
    assert seen == ({replica: events[-1][0]} if events else {replica: 0})
    for _, context, model, accuracy, cost, latency, _, probability in events:
        direct.observe(
            context, model, accuracy=accuracy, cost=cost, latency=latency, probability=probability
        )
    assert through_stream._core.learned() == direct._core.learned()
    # The same entry again (a copy after a lost reply) changes nothing.
    assert through_stream._core.apply_entry(encode(replica, events), seen) == (0, 0)
    assert through_stream._core.learned() == direct._core.learned()


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
def test_refuses_what_is_not_an_entry(raw: bytes) -> None:
    router = Router(MODELS, seed=1)
    seen: dict[str, int] = {}
    with pytest.raises(PickLLMError):
        router._core.apply_entry(raw, seen)
    assert seen == {}
