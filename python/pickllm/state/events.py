"""Feedback events as they travel through the stream: versioned JSON, never pickle.

One stream entry has one field, ``e``, holding the event as compact JSON with short keys (an
event is written once per feedback and read by every replica, so bytes count)::

    {"v": 1, "r": replica, "s": seq, "c": context, "m": model,
     "a": accuracy, "k": cost, "l": latency, "w": reward, "p": probability}

``r`` and ``s`` identify the event: each replica numbers its events 1, 2, 3... in publishing
order, which is what lets every reader drop a duplicate (an event published twice after a lost
reply) exactly. ``w`` is the reward the issuing replica computed; readers recompute it from the
observation with their own (identical) configuration. ``p`` is the decision's propensity, or null.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from pickllm.state.errors import SharedStateError

__all__ = ["VERSION", "Event", "decode", "encode"]

#: The event format this version writes and reads.
VERSION = 1


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


def encode(event: Event) -> bytes:
    return json.dumps(
        {
            "v": VERSION,
            "r": event.replica,
            "s": event.seq,
            "c": event.context,
            "m": event.model,
            "a": event.accuracy,
            "k": event.cost,
            "l": event.latency,
            "w": event.reward,
            "p": event.probability,
        },
        separators=(",", ":"),
        allow_nan=False,
    ).encode()


def decode(raw: bytes) -> Event:
    """The event in ``raw``, or SharedStateError saying why it is not one."""
    try:
        data: Any = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise SharedStateError(f"event is not JSON: {error}") from None
    if not isinstance(data, dict) or data.get("v") != VERSION:
        version = data.get("v") if isinstance(data, dict) else None
        raise SharedStateError(f"event format {version!r} is not {VERSION}, the one this reads")
    try:
        event = Event(
            replica=data["r"],
            seq=data["s"],
            context=data["c"],
            model=data["m"],
            accuracy=data["a"],
            cost=data["k"],
            latency=data["l"],
            reward=data["w"],
            probability=data["p"],
        )
    except KeyError as missing:
        raise SharedStateError(f"event lacks field {missing}") from None
    numbers = [event.accuracy, event.cost, event.latency, event.reward]
    if event.probability is not None:
        numbers.append(event.probability)
    if not (
        isinstance(event.replica, str)
        and isinstance(event.seq, int)
        and not isinstance(event.seq, bool)
        and event.seq >= 1
        and isinstance(event.context, str)
        and isinstance(event.model, str)
        and all(
            isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
            for x in numbers
        )
    ):
        raise SharedStateError(f"event has a field of the wrong type: {data!r}")
    return event
