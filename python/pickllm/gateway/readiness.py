"""Whether a worker should get traffic (``GET /readyz``), given its routers' shared state.

The rule (docs/gateway.md, "Readiness"): a worker is ready once started, unless a router with
``shared = {...}``

* has not reached Redis yet since the worker started;
* cannot reach Redis and its budget fails closed (every budgeted request would get a 503);
* cannot reach Redis for ``ready_grace`` seconds or more (it learns nothing from the fleet);
* has a full feedback buffer (``RedisState.buffer``): new feedback events are being dropped,
  never learned from by any replica.

It is ready again as soon as none holds. Each change is logged once (a warning with the reason,
then "ready again"); the ``pickllm_shared_*`` gauges show the state behind it. Judged from
``Router.shared_status()``, which never waits on Redis.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pickllm.state import SharedStatus

__all__ = ["Readiness"]

logger = logging.getLogger("pickllm.gateway")


@dataclass
class _Seen:
    """What one router's shared state looked like so far."""

    connected_once: bool = False
    down_since: float | None = None
    reason: str | None = None
    warned: bool = False  # a "not ready" was logged, not closed by "ready again" yet


@dataclass
class Readiness:
    """Each router's reasons not to be ready (none: ready); see the module docs."""

    grace: float
    clock: Callable[[], float] = time.monotonic
    _seen: dict[str, _Seen] = field(default_factory=dict)

    def observe(
        self, router: str, status: SharedStatus, *, fails_closed: bool, buffer: int
    ) -> str | None:
        """Take ``router``'s status now (``fails_closed``: it has a budget that fails closed
        while Redis is unavailable; ``buffer``: its feedback buffer's size); why it is not
        ready, or None."""
        now = self.clock()
        seen = self._seen.setdefault(router, _Seen())
        if status.connected:
            seen.connected_once, seen.down_since = True, None
        elif seen.down_since is None:
            seen.down_since = now
        reasons = []
        if not status.connected:
            if not seen.connected_once:
                reasons.append("has not reached Redis yet")
            elif fails_closed:
                reasons.append("cannot reach Redis and its budget fails closed")
            elif seen.down_since is not None and now - seen.down_since >= self.grace:
                reasons.append(f"cannot reach Redis for {self.grace:g} s or more")
        if status.buffered >= buffer:
            reasons.append("has a full feedback buffer: new events are dropped")
        reason = "; ".join(reasons) or None
        if reason != seen.reason:
            self._log(router, seen, reason, status)
            seen.reason = reason
        return reason

    def _log(self, router: str, seen: _Seen, reason: str | None, status: SharedStatus) -> None:
        """A warning for each change, but none for a start not connected yet (the usual):
        "ready again" closes what a warning opened, at the same level."""
        if reason is None:
            if seen.warned:
                logger.warning("pickllm gateway: router %r: shared state ready again", router)
            seen.warned = False
        elif seen.connected_once:
            seen.warned = True
            logger.warning(
                "pickllm gateway: not ready: router %r %s (last error: %s)",
                router,
                reason,
                status.last_error or "none",
            )
