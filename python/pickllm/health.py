"""Per-model health for the route loop: a circuit breaker, and Retry-After holds.

A model whose calls keep failing is taken out of selection for a while instead of being called
(and fed back as a failure) again and again:

* **closed** (healthy): calls go through. The circuit opens after ``failures`` consecutive
  failures, or once at least ``min_calls`` of the last ``window`` calls are known and the share of
  failures among them reaches ``failure_rate``.
* **open**: the model is excluded from every selection (through the core's subset selection)
  for ``cooldown`` seconds.
* **half-open**: after the cooldown, up to ``probes`` trial calls may run at once. A success
  closes the circuit (its history starts afresh); a failure opens it for another cooldown.

An error answer with Retry-After (a 429, a 503) holds the model open until that time has passed,
breaker or not, but for at most ``max_hold`` seconds (the router's ``max_retry_after``, five
minutes by default): a server asking for ``Retry-After: 99999999999`` or a date in 2099 does not
bench a model for decades.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field

from pickllm.config import _Config

__all__ = ["CircuitBreaker", "Health", "State"]

State = Literal["closed", "open", "half_open"]


class CircuitBreaker(_Config):
    """When to stop calling a failing model, and when to try it again (see the module docs).

    >>> CircuitBreaker(failures=3, cooldown=10.0).failures
    3
    """

    failures: int = Field(default=5, ge=1)
    failure_rate: float = Field(default=0.5, gt=0.0, le=1.0)
    window: int = Field(default=20, ge=1)
    min_calls: int = Field(default=10, ge=1)
    cooldown: float = Field(default=30.0, ge=0.0)
    probes: int = Field(default=1, ge=1)

    def model_post_init(self, context: Any, /) -> None:
        if self.min_calls > self.window:
            from pickllm.errors import ConfigError

            raise ConfigError(
                f"CircuitBreaker.min_calls must be <= window={self.window}, got {self.min_calls}"
            )


@dataclass
class _Model:
    state: State = "closed"
    #: Monotonic time until which the model is not called (open, or held by a Retry-After).
    until: float = 0.0
    consecutive: int = 0
    recent: deque[bool] = field(default_factory=deque)  # True = failure
    probes: int = 0


class Health:
    """The breaker state of every model of one router. Thread-safe; ``clock`` is injectable."""

    def __init__(
        self,
        breaker: CircuitBreaker | None,
        models: Sequence[str],
        clock: Callable[[], float] = time.monotonic,
        *,
        max_hold: float = 300.0,
    ) -> None:
        self.breaker = breaker
        self.max_hold = max_hold
        self._clock = clock
        self._lock = threading.Lock()
        window = breaker.window if breaker else 1
        self._models = {m: _Model(recent=deque(maxlen=window)) for m in models}
        #: How many models are not closed: while none is, there is nothing to refresh, block
        #: or count as a probe, and the calls below return without taking the lock.
        self._not_closed = 0

    def _refresh(self, m: _Model, now: float) -> None:
        if m.state == "open" and now >= m.until:
            m.state = "half_open" if self.breaker else "closed"
            m.probes = 0
            if m.state == "closed":
                self._not_closed -= 1

    def blocked(self) -> dict[str, str]:
        """Models not to call now, each with the reason."""
        if not self._not_closed:  # read without the lock: as if called a moment earlier
            return {}
        now = self._clock()
        out = {}
        with self._lock:
            for name, m in self._models.items():
                self._refresh(m, now)
                if m.state == "open":
                    out[name] = f"circuit open for {m.until - now:.1f} s more"
                elif m.state == "half_open" and self.breaker and m.probes >= self.breaker.probes:
                    out[name] = "circuit half-open, trial call in flight"
        return out

    def state(self, model: str) -> State:
        with self._lock:
            m = self._models[model]
            self._refresh(m, self._clock())
            return m.state

    def started(self, model: str) -> None:
        """A call to ``model`` begins (counts a half-open probe)."""
        if not self._not_closed:
            return
        with self._lock:
            m = self._models[model]
            self._refresh(m, self._clock())
            if m.state == "half_open":
                m.probes += 1

    def released(self, model: str) -> None:
        """A call to ``model`` ended without a verdict (cancelled): free its probe slot."""
        with self._lock:
            m = self._models[model]
            if m.state == "half_open" and m.probes > 0:
                m.probes -= 1

    def succeeded(self, model: str) -> None:
        with self._lock:
            m = self._models[model]
            if m.state == "half_open":
                m.state, m.probes = "closed", 0
                m.recent.clear()
                self._not_closed -= 1
            m.consecutive = 0
            m.recent.append(False)

    def failed(self, model: str) -> None:
        with self._lock:
            m = self._models[model]
            m.recent.append(True)
            m.consecutive += 1
            b = self.breaker
            if b is None:
                return
            rate_tripped = len(m.recent) >= b.min_calls and (
                sum(m.recent) / len(m.recent) >= b.failure_rate
            )
            if m.state == "half_open" or m.consecutive >= b.failures or rate_tripped:
                self._open(m, self._clock() + b.cooldown)

    def hold(self, model: str, seconds: float) -> None:
        """Keep ``model`` out for ``seconds`` (an error answer's Retry-After), at most
        ``max_hold``."""
        seconds = min(seconds, self.max_hold) if seconds >= 0 else 0.0  # NaN compares False
        with self._lock:
            m = self._models[model]
            self._open(m, max(m.until, self._clock() + seconds))

    def _open(self, m: _Model, until: float) -> None:
        if m.state == "closed":
            self._not_closed += 1
        m.state, m.until, m.probes = "open", until, 0
        m.consecutive = 0
