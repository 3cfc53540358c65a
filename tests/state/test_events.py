"""The event format: versioned JSON written by the core's outbox and read whole entries at a
time by the core; anything else (pickle, another version, wrong shapes) is refused."""

from __future__ import annotations

import json
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pickllm import PickLLMError, Router

MODELS = ["a", "b"]

#: context, model, accuracy, cost, latency, probability
Outcome = tuple[str, str, float, float, float, float | None]

outcomes = st.tuples(
    st.text(),
    st.sampled_from(MODELS),
    st.floats(0, 1),
    st.floats(0, 1e6),
    st.floats(0, 1e6),
    st.one_of(st.none(), st.floats(0, 1, exclude_min=True)),
)


@given(st.text(), st.lists(outcomes, max_size=50), st.integers(1, 7))
def test_what_the_outbox_writes_the_core_applies_like_observe(
    replica: str, events: list[Outcome], per_entry: int
) -> None:
    writer, through_stream, direct = (Router(MODELS, seed=seed) for seed in (1, 2, 3))
    outbox = writer._core.share(replica, 1000)
    for context, model, accuracy, cost, latency, probability in events:
        for router in (writer, direct):
            router.observe(
                context,
                model,
                accuracy=accuracy,
                cost=cost,
                latency=latency,
                probability=probability,
            )
    entries, count = outbox.take(1000, per_entry, 0.0)
    assert count == len(events)
    assert len(entries) == -(-len(events) // per_entry)
    assert outbox.counts() == (len(events), 0, len(events), 0)
    assert writer._core.learned() == Router(MODELS, seed=4)._core.learned(), "queued, not learned"
    seen: dict[str, int] = {}
    assert [through_stream._core.apply_entry(e, seen) for e in entries] == [
        (len(json.loads(e)["e"]), 0, 0) for e in entries
    ]
    assert seen == ({replica: len(events)} if events else {})
    assert through_stream._core.learned() == direct._core.learned()
    # The same entries again (copies after a lost reply) change nothing.
    again = [through_stream._core.apply_entry(e, seen) for e in entries]
    assert again == [(0, 0, 0)] * len(entries)
    assert through_stream._core.learned() == direct._core.learned()
    assert outbox.acknowledge(count) == len(events)
    assert outbox.counts() == (len(events), len(events), 0, 0)


def test_a_router_shares_once() -> None:
    router = Router(MODELS, seed=1)
    router._core.share("r", 10)
    with pytest.raises(PickLLMError, match="one call per router"):
        router._core.share("r", 10)
    outbox = Router(MODELS, seed=1)._core.share("r", 10)
    with pytest.raises(PickLLMError, match="seconds"):
        outbox.take(1, 1, -1.0)


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
