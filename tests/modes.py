"""One async test checks a backend's sync and async calls alike: ``mode`` says which is made."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import anyio.to_thread
import pytest

from pickllm.backends import Backend, Completion, Message

#: Run a test once per mode (its ``mode`` argument).
MODES = pytest.mark.parametrize("mode", ["sync", "async"])


async def complete_in(
    mode: str, backend: Backend, messages: Sequence[Message], **kwargs: Any
) -> Completion:
    """``backend``'s answer through ``acomplete`` (mode "async") or ``complete``, which runs in a
    worker thread so that both modes share the test's event loop."""
    if mode == "async":
        return await backend.acomplete(messages, **kwargs)
    return await anyio.to_thread.run_sync(functools.partial(backend.complete, messages, **kwargs))
