"""What ``Router.shared_status()`` reports."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SharedStatus"]


@dataclass(frozen=True)
class SharedStatus:
    """One replica's view of the shared state.

    Attributes:
        connected: the last exchange with Redis succeeded.
        lag: events in the stream that this replica has not applied yet (None while Redis is
            unreachable).
        buffered: local feedback events waiting to be published.
        dropped: events refused because the local buffer was full (never published, never
            learned by any replica); counted, never silent.
        published: events of this replica acknowledged by Redis.
        applied: events this replica has learned from (its own included).
        rejected: events skipped because they were invalid (every replica skips the same ones).
        position: the stream id of the last event read.
    """

    connected: bool
    lag: int | None
    buffered: int
    dropped: int
    published: int
    applied: int
    rejected: int
    position: str
