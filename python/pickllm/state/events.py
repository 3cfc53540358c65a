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
propensity, or null. Readers decode and apply whole entries in the core
(``RouterCore.apply_entry``, rust/events.rs), which validates each event like any feedback.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

__all__ = ["VERSION", "Fields", "encode"]

#: The event format this version writes and reads.
VERSION = 1

#: One event as queued and encoded: seq, context, model, accuracy, cost, latency, reward,
#: probability.
Fields = tuple[int, str, str, float, float, float, float, float | None]


def encode(replica: str, events: Sequence[Fields]) -> bytes:
    """One stream entry: ``events`` of ``replica``, in order."""
    document = {"v": VERSION, "r": replica, "e": events}
    return json.dumps(document, separators=(",", ":"), allow_nan=False).encode()
