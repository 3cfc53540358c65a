"""A call's phase timeouts under its deadline (backends/_limits.py), as plain values."""

from __future__ import annotations

import time

import httpx

from pickllm.backends._limits import CallLimits

CONFIGURED = httpx.Timeout(120.0, connect=10.0)


def test_phases_are_cut_to_the_time_left() -> None:
    limits = CallLimits.checked(time.monotonic() + 100.0, None)
    timeout = limits.timeout(CONFIGURED)
    assert timeout.connect == 10.0  # shorter than the time left: kept
    for phase in (timeout.read, timeout.write, timeout.pool):
        assert phase is not None
        assert 0 < phase <= 100.0


def test_a_scoped_call_keeps_only_the_phase_timeouts_shorter_than_the_time_left() -> None:
    # Its cancel scope fires at the deadline: a timeout of at least the time left could only
    # fire after it, so none is set (and no timer re-armed per chunk).
    limits = CallLimits.checked(time.monotonic() + 100.0, None)
    phases = limits.phases(CONFIGURED.as_dict())
    assert phases["connect"] == 10.0
    assert (phases["read"], phases["write"], phases["pool"]) == (None, None, None)


def test_without_a_deadline_the_configured_timeouts_stay() -> None:
    limits = CallLimits.checked(None, None)
    assert limits.timeout(CONFIGURED) is CONFIGURED
    configured = CONFIGURED.as_dict()
    assert limits.phases(configured) is configured
