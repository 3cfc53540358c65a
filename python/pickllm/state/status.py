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
        lost: events the log lost (gaps in a producer's sequence numbers: acknowledged by a
            Redis that then restarted empty, say), as counted in the log up to ``position``;
            every replica counts the same ones.
        errors: errors the replica's threads met (each retried; see ``last_error``).
        last_error: the latest of them, or None; a re-seeded log shows here too.
        epoch: the log's epoch (a new one after a lost log was re-seeded), None before the
            first read.
    """

    connected: bool
    lag: int | None
    buffered: int
    dropped: int
    published: int
    applied: int
    rejected: int
    position: str
    lost: int = 0
    errors: int = 0
    last_error: str | None = None
    epoch: str | None = None
