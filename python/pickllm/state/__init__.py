"""Learn as one across worker processes and replicas: shared state on Redis.

Decisions stay local. Every feedback becomes an event appended to a Redis Stream, and every
replica (the one that produced it included) learns from the events in stream order, so replicas
that have read the same prefix hold the same learned state. See docs/design.md.

Needs the ``redis`` extra: ``pip install "pickllm[redis]"``; the client is imported only when a
router attaches to shared state.
"""

from pickllm.state.config import RedisState as RedisState
from pickllm.state.errors import SharedStateError as SharedStateError
from pickllm.state.errors import SyncTimeoutError as SyncTimeoutError
from pickllm.state.status import SharedStatus as SharedStatus

__all__ = ["RedisState", "SharedStateError", "SharedStatus", "SyncTimeoutError"]
