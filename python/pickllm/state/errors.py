"""Errors of shared state."""

from __future__ import annotations

from pickllm.errors import PickLLMError

__all__ = ["SharedStateError", "SyncTimeoutError"]


class SharedStateError(PickLLMError):
    """Shared state cannot be used as asked: another configuration already shares the name, or
    a stored checkpoint or event is not one this version reads."""


class SyncTimeoutError(SharedStateError, TimeoutError):
    """``Router.sync`` ran out of time before every earlier event was applied locally."""
