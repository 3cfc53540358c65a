"""Prometheus gauges of shared state (``shared = {...}``): one set per router, refreshed by the
gateway's sweeper from ``Router.shared_status()`` (values the replica's threads keep: reading
them never waits on Redis). With several workers, connected is the worst (min) over live
workers, lag and lost the largest, the counts summed."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge

from pickllm.state import SharedStatus

__all__ = ["SharedStateGauges"]

_GAUGES = (
    ("connected", "1 while the replica's last exchanges with Redis succeeded, else 0", "livemin"),
    ("lag_events", "Events in the shared log not applied by the replica yet", "livemax"),
    ("buffered_events", "Feedback events waiting to be published to Redis", "livesum"),
    ("dropped_events", "Feedback events dropped because the local buffer was full", "livesum"),
    ("lost_events", "Events the shared log lost (gaps in a producer's sequence)", "livemax"),
    ("errors", "Errors the replica's threads met and retried", "livesum"),
)


class SharedStateGauges:
    """``pickllm_shared_<name>{router}`` for each gauge of ``_GAUGES``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._gauges = {
            name: Gauge(
                f"pickllm_shared_{name}",
                text,
                ["router"],
                registry=registry,
                multiprocess_mode=mode,  # type: ignore[arg-type]
            )
            for name, text, mode in _GAUGES
        }

    def refresh(self, router: str, status: SharedStatus) -> None:
        values = {
            "connected": float(status.connected),
            "lag_events": float(status.lag if status.lag is not None else -1),
            "buffered_events": float(status.buffered),
            "dropped_events": float(status.dropped),
            "lost_events": float(status.lost),
            "errors": float(status.errors),
        }
        for name, value in values.items():
            self._gauges[name].labels(router).set(value)
