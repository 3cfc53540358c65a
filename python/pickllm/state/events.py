"""Feedback events as they travel through the stream: versioned JSON, never pickle.

A replica publishes its events in batches: one stream entry holds one field, ``e``, with the
events of one replica in publishing order, as compact JSON (each event is written once and read
by every replica, and one entry per batch instead of per event is what makes the stream fast)::

    {"v": 1, "r": "<replica>", "e": [[seq, context, model, accuracy, cost, latency, reward,
                                      probability], ...]}

``r`` and ``seq`` identify an event: each replica numbers its events 1, 2, 3... in publishing
order, which is what lets every reader drop a copy (a batch published twice after a lost reply)
exactly. ``reward`` is what the issuing replica computed; readers recompute it from the
observation with their own (identical) configuration. ``probability`` is the decision's
propensity, or null. Readers validate each observation in the core, as for any feedback.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pickllm.state.errors import SharedStateError

__all__ = ["VERSION", "Event", "Fields", "decode", "encode"]

#: The event format this version writes and reads.
VERSION = 1

#: One event as queued and encoded: seq, context, model, accuracy, cost, latency, reward,
#: probability.
Fields = tuple[int, str, str, float, float, float, float, float | None]


@dataclass(frozen=True, slots=True)
class Event:
    replica: str
    seq: int
    context: str
    model: str
    accuracy: float
    cost: float
    latency: float
    reward: float
    probability: float | None

    @property
    def fields(self) -> Fields:
        return (
            self.seq,
            self.context,
            self.model,
            self.accuracy,
            self.cost,
            self.latency,
            self.reward,
            self.probability,
        )


def encode(replica: str, events: Sequence[Fields]) -> bytes:
    """One stream entry: ``events`` of ``replica``, in order."""
    document = {"v": VERSION, "r": replica, "e": events}
    return json.dumps(document, separators=(",", ":"), allow_nan=False).encode()


def decode(raw: bytes) -> tuple[str, list[Any]]:
    """The replica and its events in ``raw``, or SharedStateError saying why ``raw`` is not an
    entry of this format. Each event's shape is checked by the reader and its values by the
    core when it is applied, like any feedback."""
    try:
        data: Any = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise SharedStateError(f"entry is not JSON: {error}") from None
    if not isinstance(data, dict) or data.get("v") != VERSION:
        version = data.get("v") if isinstance(data, dict) else None
        raise SharedStateError(f"event format {version!r} is not {VERSION}, the one this reads")
    replica, events = data.get("r"), data.get("e")
    if not isinstance(replica, str) or not isinstance(events, list):
        raise SharedStateError(f"entry lacks a replica or its events: {data!r}")
    return replica, events
