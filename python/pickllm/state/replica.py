"""One router's link to the shared state: a publisher and an applier, each on its own thread.

The hot path is the core's own ``feedback``: in one call it settles the decision without
learning and queues the event in the core's bounded outbox (``RouterCore.share``); it never
touches the network, nor Python. The publisher thread takes the outbox's events as ready-encoded
stream entries (waiting and encoding detached from the interpreter), sends them in order
(``XADD`` in pipelined batches) and acknowledges them once Redis has; the applier thread reads
the stream in order and learns from each event exactly once, its own included. See
docs/design.md for why this is exactly once and in order.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from pickllm._core import RouterCore
from pickllm.budget import Budget
from pickllm.errors import PickLLMError
from pickllm.state.budget import SharedSpending
from pickllm.state.errors import SharedStateError, SyncTimeoutError
from pickllm.state.status import SharedStatus

if TYPE_CHECKING:
    from pickllm.state.config import RedisState

__all__ = ["Replica", "stream_id"]

#: Checkpoint documents this version writes and reads.
CHECKPOINT_VERSION = 1
#: Events per stream entry, entries per XADD pipeline and per XREAD.
BATCH = 1000
ENTRIES = 10
#: How long one XREAD blocks before the applier checks whether it should stop (milliseconds).
BLOCK_MS = 200
#: The longest the publisher waits for an event in one call (seconds); a push or close wakes it.
TAKE_SECONDS = 1.0

_UNREACHABLE = (redis.ConnectionError, redis.TimeoutError)
#: The learned part of a router that has learned nothing (see rust/learned.rs).
_NOTHING_LEARNED = b'{"contexts": {}}'

#: Store a checkpoint only if it is newer than the stored one, then trim the stream behind the
#: previous checkpoint: a replica still reading between the two finds the trim mark and reloads.
#: KEYS: checkpoint, checkpoint position, events, trim mark. ARGV: position, document.
_CHECKPOINT = """
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local previous = redis.call('GET', KEYS[2])
if previous then
  local pm, ps = parse(previous)
  local nm, ns = parse(ARGV[1])
  if nm < pm or (nm == pm and ns <= ps) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[1])
if previous then
  redis.call('XTRIM', KEYS[3], 'MINID', previous)
  redis.call('SET', KEYS[4], previous)
end
return 1
"""

#: Take the checkpoint lease, or renew it if this replica holds it. KEYS: lease. ARGV: id, ms.
_LEASE = """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""


def stream_id(raw: bytes | str) -> tuple[int, int]:
    """A stream entry id as a comparable pair."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def _text(position: tuple[int, int]) -> str:
    return f"{position[0]}-{position[1]}"


class Replica:
    """The shared-state side of one router (see the module docs)."""

    def __init__(self, config: RedisState, core: RouterCore) -> None:
        self.config = config
        self.id = secrets.token_hex(8)
        self._core = core
        self._config_json = core.config_json()
        prefix = f"pickllm:{config.name}:"
        self.keys = {
            part: prefix + part
            for part in (
                "events",
                "config",
                "checkpoint",
                "checkpoint-position",
                "trimmed",
                "lease",
                "budget",
            )
        }
        # One client per thread that talks to Redis (the applier blocks in XREAD); no hidden
        # retries: a failed exchange is handled here, where the order of events is known.
        self.client, self._publisher_client, self._applier_client = (self._connect() for _ in "abc")
        self._checkpoint_script = self._applier_client.register_script(_CHECKPOINT)
        self._lease_script = self._applier_client.register_script(_LEASE)

        # Publishing: the core's outbox holds the events Redis has not acknowledged yet, in
        # order; from here on the core's feedback queues into it instead of learning.
        self._acked = threading.Condition()  # Redis acknowledged more (or gave up for good)
        self._acknowledged = 0  # the highest seq Redis has acknowledged
        self._published = 0

        # Applying: the stream position read, and per issuing replica the highest seq applied.
        self._applied_cond = threading.Condition()
        self._position = (0, 0)
        self._offset = 0  # stream entries up to and including the position
        self._seen: dict[str, int] = {}
        self._applied = 0
        self._rejected = 0
        self._since_checkpoint = 0
        self._loaded = False
        #: Called on the applier thread after each applied entry with the highest sequence
        #: number applied per replica (benchmarks measure lag with it).
        self.on_applied: Callable[[dict[str, int]], None] | None = None

        self._connected = False
        self._fatal: SharedStateError | None = None
        self._ready = threading.Event()
        self._closing = threading.Event()
        # Fail fast when reachable; otherwise the applier checks when it gets through.
        with contextlib.suppress(*_UNREACHABLE):
            self._check_config(self.client)
        self._outbox = core.share(self.id, config.buffer)
        self._threads = [
            threading.Thread(target=self._publish_loop, name="pickllm-publish", daemon=True),
            threading.Thread(target=self._apply_loop, name="pickllm-apply", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _connect(self) -> redis.Redis:
        # A blocking pool: many threads (route calls reserving budget) wait for a free
        # connection instead of failing when all are taken.
        pool = redis.BlockingConnectionPool.from_url(
            self.config.url,
            max_connections=64,
            timeout=None,
            socket_connect_timeout=2.0,
            socket_timeout=10.0,
            retry=Retry(NoBackoff(), 0),
        )
        return redis.Redis(connection_pool=pool)

    def spending(self, budget: Budget) -> SharedSpending:
        """The budget ``budget`` held in Redis for every router sharing this state."""
        return SharedSpending(budget, self.client, self.keys["budget"])

    # ==================== Publishing ====================

    def _publish_loop(self) -> None:
        # Nothing goes out before the configuration is known to match the stream's.
        while not self._ready.wait(0.5):
            if self._closing.is_set() or self._fatal is not None:
                return
        client, take = self._publisher_client, self._outbox.take
        while True:
            # Waits for events without the GIL; empty once closed and drained.
            entries, count = take(BATCH * ENTRIES, BATCH, TAKE_SECONDS)
            if not count:
                if self._closing.is_set():
                    return
                continue
            # Until Redis acknowledges them: the outbox counts them as buffered meanwhile.
            while True:
                try:
                    pipe = client.pipeline(transaction=False)
                    for entry in entries:
                        pipe.xadd(self.keys["events"], {"e": entry})
                    pipe.execute()
                    break
                except _UNREACHABLE:
                    # Some may have gone through: sent again, readers drop the copies.
                    self._connected = False
                    if self._closing.wait(self.config.reconnect_seconds):
                        return
            self._connected = True
            acknowledged = self._outbox.acknowledge(count)
            with self._acked:
                self._published += count
                self._acknowledged = acknowledged
                self._acked.notify_all()

    # ==================== Applying ====================

    def _apply_loop(self) -> None:
        client = self._applier_client
        while not self._closing.is_set():
            try:
                if not self._loaded:
                    self._load(client)
                pipe = client.pipeline(transaction=False)
                pipe.xread(
                    {self.keys["events"]: _text(self._position)}, count=BATCH, block=BLOCK_MS
                )
                pipe.get(self.keys["trimmed"])
                reply, trimmed = pipe.execute()
                self._connected = True
                if trimmed is not None and stream_id(trimmed) > self._position:
                    # Trimmed past what this replica has read: what it missed is in the checkpoint.
                    self._loaded = False
                    continue
                if reply:
                    self._apply(reply[0][1])
                    self._maybe_checkpoint(client)
            except _UNREACHABLE:
                self._connected = False
                self._closing.wait(self.config.reconnect_seconds)
            except SharedStateError as error:
                with self._applied_cond:
                    self._fatal = error
                    self._applied_cond.notify_all()
                with self._acked:
                    self._acked.notify_all()
                return

    def _check_config(self, client: redis.Redis) -> None:
        client.set(self.keys["config"], self._config_json, nx=True)
        stored: Any = client.get(self.keys["config"])
        if stored is not None and json.loads(stored) != json.loads(self._config_json):
            raise SharedStateError(
                f"shared state {self.config.name!r} belongs to routers with another "
                f"configuration: {stored.decode()}"
            )

    def _load(self, client: redis.Redis) -> None:
        """Start (or restart) from the latest checkpoint, if there is one."""
        self._check_config(client)
        raw = client.get(self.keys["checkpoint"])
        with self._applied_cond:
            if raw is not None:
                document = json.loads(raw)
                if document.get("v") != CHECKPOINT_VERSION:
                    raise SharedStateError(
                        f"checkpoint format {document.get('v')!r} is not {CHECKPOINT_VERSION}"
                    )
                try:
                    self._core.restore_learned(json.dumps(document["learned"]).encode())
                except PickLLMError as error:
                    raise SharedStateError(f"invalid checkpoint: {error}") from None
                self._position = stream_id(document["position"])
                self._offset = document["offset"]
                self._seen = dict(document["seen"])
            else:
                # No checkpoint: the shared state is the whole stream, read from its start. A
                # router restored from a snapshot forgets what it learned elsewhere.
                self._core.restore_learned(_NOTHING_LEARNED)
                self._position, self._offset, self._seen = (0, 0), 0, {}
            self._loaded = True
            self._applied_cond.notify_all()
        self._connected = True
        self._ready.set()

    def _apply(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        apply_entry = self._core.apply_entry
        seen = self._seen
        hook = self.on_applied
        applied = rejected = 0
        for _, fields in entries:
            try:
                # Decoded and learned from in the core; copies (at or below seen[replica]) are
                # skipped, invalid events counted, by every replica alike.
                done, refused = apply_entry(fields.get(b"e", b""), seen)
            except PickLLMError:
                rejected += 1  # not an entry of this format: skipped whole
                continue
            applied += done
            rejected += refused
            if hook is not None:
                hook(seen)
        with self._applied_cond:
            self._position = stream_id(entries[-1][0])
            self._offset += len(entries)
            self._applied += applied
            self._rejected += rejected
            self._since_checkpoint += applied + rejected
            self._applied_cond.notify_all()

    def _maybe_checkpoint(self, client: redis.Redis) -> None:
        if self._since_checkpoint < self.config.checkpoint_every:
            return
        self._since_checkpoint = 0
        lease_ms = int(self.config.lease_seconds * 1000)
        if not self._lease_script(
            keys=[self.keys["lease"]], args=[self.id, lease_ms], client=client
        ):
            return
        position = _text(self._position)
        document = {
            "v": CHECKPOINT_VERSION,
            "position": position,
            "offset": self._offset,
            "seen": self._seen,
            "config": json.loads(self._config_json),
            "learned": json.loads(self._core.learned()),
        }
        keys = [self.keys[k] for k in ("checkpoint", "checkpoint-position", "events", "trimmed")]
        self._checkpoint_script(keys=keys, args=[position, json.dumps(document)], client=client)

    # ==================== Waiting and reporting ====================

    def sync(self, timeout: float) -> None:
        """Return once every event published before the call has been applied locally."""
        deadline = time.monotonic() + timeout

        def left() -> float:
            return max(0.0, deadline - time.monotonic())

        target = self._outbox.counts()[0]
        with self._acked:
            if not self._acked.wait_for(
                lambda: self._acknowledged >= target or self._fatal is not None, left()
            ):
                raise SyncTimeoutError(
                    f"{target - self._acknowledged} local event(s) not published within {timeout} s"
                )
        self._raise_fatal()
        while True:
            try:
                last: Any = self.client.xrevrange(self.keys["events"], count=1)
                break
            except _UNREACHABLE:
                if left() == 0.0:
                    raise SyncTimeoutError(f"Redis unreachable for {timeout} s") from None
                self._closing.wait(min(self.config.reconnect_seconds, left()))  # reconnect pause
        goal = stream_id(last[0][0]) if last else (0, 0)
        with self._applied_cond:
            if not self._applied_cond.wait_for(
                lambda: (self._loaded and self._position >= goal) or self._fatal is not None,
                left(),
            ):
                raise SyncTimeoutError(
                    f"applied up to {_text(self._position)}, not {_text(goal)}, within {timeout} s"
                )
        self._raise_fatal()

    def _raise_fatal(self) -> None:
        if self._fatal is not None:
            raise self._fatal

    def status(self) -> SharedStatus:
        lag: int | None = None
        try:
            info: dict[Any, Any] = self.client.xinfo_stream(self.keys["events"])
            lag = max(0, int(info["entries-added"]) - self._offset)
        except redis.ResponseError:
            lag = 0  # no stream yet: nothing to apply
        except _UNREACHABLE:
            self._connected = False
        _, _, buffered, dropped = self._outbox.counts()
        with self._acked:
            published = self._published
        with self._applied_cond:
            return SharedStatus(
                connected=self._connected and lag is not None,
                lag=lag,
                buffered=buffered,
                dropped=dropped,
                published=published,
                applied=self._applied,
                rejected=self._rejected,
                position=_text(self._position),
            )

    def close(self, timeout: float = 5.0) -> None:
        """Publish what is queued (within ``timeout``) and stop both threads."""
        self._closing.set()
        self._outbox.close()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        for client in (self.client, self._publisher_client, self._applier_client):
            client.close()
            client.connection_pool.disconnect()  # a pool given to Redis() is not closed by it
