"""`RedisState`: where and how a router shares what it learns."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from pickllm.config import _Config

if TYPE_CHECKING:
    from pickllm._core import RouterCore
    from pickllm.state.replica import Replica

__all__ = ["RedisState"]


class RedisState(_Config):
    """Share learned state (and budgets) through one Redis server.

    Every router given the same ``url`` and ``name`` learns from the same ordered feedback
    events; they must have the same configuration (pool, policy, reward, prior).

    Args:
        url: the Redis server, ``redis://host:port/db``.
        name: the shared state's name; its keys start with ``pickllm:<name>:``.
        buffer: feedback events kept locally while Redis is unreachable; beyond that new events
            are dropped and counted (``Router.shared_status().dropped``).
        checkpoint_every: events applied between two checkpoints (the replica holding the lease
            stores the learned state and trims the stream behind the previous checkpoint).
        lease_seconds: how long the checkpoint lease lasts without renewal.
        reconnect_seconds: the pause between two attempts to reach an unreachable Redis.

    >>> RedisState(url="redis://127.0.0.1:6379/0", name="support-bot").buffer
    100000
    """

    url: str
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    buffer: int = Field(default=100_000, ge=1)
    checkpoint_every: int = Field(default=50_000, ge=1)
    lease_seconds: float = Field(default=30.0, gt=0.0)
    reconnect_seconds: float = Field(default=0.2, gt=0.0)

    def _attach(self, core: RouterCore) -> Replica:
        from pickllm.state.replica import Replica  # the redis extra, only when used

        return Replica(self, core)
