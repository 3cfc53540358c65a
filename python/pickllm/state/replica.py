"""One router's link to the shared state: a publisher and an applier, each on its own thread.

The hot path is the core's own ``feedback``: in one call it settles the decision without
learning and queues the event in the core's bounded outbox (``RouterCore.share``); it never
touches the network, nor Python. The publisher thread takes the outbox's events as ready-encoded
stream entries (waiting and encoding detached from the interpreter), sends them in order
(``XADD`` in pipelined batches) and acknowledges them once Redis has; the applier thread reads
the stream in order and learns from each event exactly once, its own included. See
docs/design.md for why this is exactly once and in order, and for the durability contract.

Both threads are supervised: any error (Redis unreachable, out of memory, a key of the wrong
type, an unreadable checkpoint...) is counted, kept as ``last_error``, logged (rate-limited, see
``health.py``) and retried after a growing pause; only :meth:`Replica.close` ends them. Every
wait is bounded: each exchange with Redis has a socket timeout, ``sync`` waits only on values
the threads keep, and ``status`` reads them without touching the network.

A lost log is detected and healed. The configuration is stored with an *epoch* (a random token)
that the applier checks after every read. When it is gone (Redis restarted empty, a flush) the
replica that takes the checkpoint lease re-seeds the configuration, a new epoch and a checkpoint
of its own learned state; the others see the new epoch and reload from that checkpoint, so the
fleet reconverges. Per-producer sequence gaps are counted as ``lost``.

A router with prompt contexts shares its fitted prompt mapper through the stored configuration:
the first replica to finish its warm-up publishes its fit there (compare-and-set on the
document, so once per epoch), and every replica adopts the published mapper when it reads it,
discarding its own fit if that lost; a re-seed stores the mapper in use with the new epoch, so
late joiners and a Redis restarted empty get it too. Prompts never leave the process.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import json
import os
import secrets
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
import redis

from pickllm._core import RouterCore
from pickllm.budget import Budget
from pickllm.errors import PickLLMError
from pickllm.state.budget import SharedSpending
from pickllm.state.errors import SharedStateError, SyncTimeoutError
from pickllm.state.health import Backoff, Health
from pickllm.state.status import SharedStatus

if TYPE_CHECKING:
    from pickllm.contexts import Mapper
    from pickllm.state.config import RedisState

__all__ = ["Replica", "stream_id"]

#: Checkpoint documents this version writes and reads.
CHECKPOINT_VERSION = 2
#: Events per stream entry, entries per XADD pipeline and per XREAD.
BATCH = 1000
ENTRIES = 10
#: How long one XREAD blocks before the applier checks whether it should stop (milliseconds).
BLOCK_MS = 200
#: The longest the publisher waits for an event in one call (seconds); a push or close wakes it.
TAKE_SECONDS = 1.0
#: How long close() waits for the threads at interpreter exit (seconds).
EXIT_SECONDS = 5.0

#: The learned part of a router that has learned nothing (see rust/learned.rs).
_NOTHING_LEARNED = b'{"contexts": {}}'

#: Store a checkpoint only if it belongs to the current epoch and is newer than the stored one,
#: then trim the stream behind the previous checkpoint: a replica still reading between the two
#: finds the trim mark and reloads; forget the retired replicas the document left out. KEYS:
#: checkpoint, learned part, checkpoint position, events, trim mark, configuration, retired
#: replicas. ARGV: position, document, learned part, epoch, then the ids left out.
_CHECKPOINT = """
local stored = redis.call('GET', KEYS[6])
if not stored or cjson.decode(stored)['epoch'] ~= ARGV[4] then return 0 end
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local previous = redis.call('GET', KEYS[3])
if previous then
  local pm, ps = parse(previous)
  local nm, ns = parse(ARGV[1])
  if nm < pm or (nm == pm and ns <= ps) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[3])
redis.call('SET', KEYS[3], ARGV[1])
if previous then
  redis.call('XTRIM', KEYS[4], 'MINID', previous)
  redis.call('SET', KEYS[5], previous)
end
for i = 5, #ARGV do redis.call('HDEL', KEYS[7], ARGV[i]) end
return 1
"""

#: Give the checkpoint lease up if this replica holds it. KEYS: lease. ARGV: id.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""

#: A replica that closed with nothing left to publish retires: it never publishes again, so
#: once a checkpoint is past its last entry no replica needs its sequence number. KEYS: retired
#: replicas (a hash: id -> the stream's last id at retirement), events. ARGV: id.
_RETIRE = """
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
if #last > 0 then redis.call('HSET', KEYS[1], ARGV[1], last[1][1]) end
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

#: Re-seed a lost log: if the configuration is still what the caller saw (absent: ARGV[1] is
#: empty; a fresh epoch seeded by a replica that had learned nothing, before any checkpoint; or,
#: ARGV[7] 'stream', the current epoch, whose stream restarted behind what was read from it)
#: and the lease is free or the caller's, store the caller's configuration with a new epoch and
#: its learned state as the checkpoint. Its position is the caller's if the stream still holds
#: that entry (only the configuration was lost: evicted, say); otherwise the stream started
#: again after the caller last read it, and the checkpoint starts at its beginning: every entry
#: in it was written after the loss, so none is in the caller's state (copies of events it
#: applied carry sequence numbers it has seen, and are skipped). KEYS: configuration,
#: checkpoint, learned part, checkpoint position, trim mark, lease, events. ARGV: expected
#: configuration, new configuration, checkpoint document (its position and offset reset here),
#: learned part, replica id, lease ms, why ('lost', 'empty' or 'stream').
_RESEED = """
local current = redis.call('GET', KEYS[1])
if ARGV[1] == '' then
  if current then return 0 end
elseif ARGV[7] == 'stream' then
  if current ~= ARGV[1] then return 0 end
else
  if current ~= ARGV[1] or redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
end
local holder = redis.call('GET', KEYS[6])
if holder and holder ~= ARGV[5] then return 0 end
local document = cjson.decode(ARGV[3])
local position = document['position']
if #redis.call('XRANGE', KEYS[7], position, position) == 0 then
  position = '0-0'
  document['position'] = position
  document['offset'] = 0
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], cjson.encode(document))
redis.call('SET', KEYS[3], ARGV[4])
redis.call('SET', KEYS[4], position)
redis.call('DEL', KEYS[5])
redis.call('SET', KEYS[6], ARGV[5], 'PX', ARGV[6])
return 1
"""


#: Publish the prompt mapper: store the configuration document with it (ARGV[2]) only if the
#: document is still the one read without it (ARGV[1]), so that one mapper per epoch wins.
_PUBLISH_MAPPER = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"""


def stream_id(raw: bytes | str) -> tuple[int, int]:
    """A stream entry id as a comparable pair."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def _text(position: tuple[int, int]) -> str:
    return f"{position[0]}-{position[1]}"


#: Replicas not closed yet, closed at interpreter exit: a thread left inside the core while the
#: interpreter finalizes would be torn down there and crash the process (issue 19).
_OPEN: weakref.WeakSet[Replica] = weakref.WeakSet()


@atexit.register
def _close_at_exit() -> None:
    for replica in list(_OPEN):
        replica.close(EXIT_SECONDS)


def _after_fork_in_child() -> None:
    for replica in list(_OPEN):
        replica._forked()


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_after_fork_in_child)


class Replica:
    """The shared-state side of one router (see the module docs)."""

    def __init__(self, config: RedisState, core: RouterCore) -> None:
        self.config = config
        self.id = secrets.token_hex(8)
        self._core = core
        self._config = json.loads(core.config_json())
        prefix = f"pickllm:{config.name}:"
        self.keys = {
            part: prefix + part
            for part in (
                "events",
                "config",
                "checkpoint",
                "checkpoint-learned",
                "checkpoint-position",
                "trimmed",
                "lease",
                "budget",
                "retired",
            )
        }
        self.health = Health(config.name, config._password())
        # One client per thread that talks to Redis (the applier blocks in XREAD); no hidden
        # retries: a failed exchange is handled here, where the order of events is known. The
        # applier's socket timeout covers its blocking read.
        timeout = config.timeout_seconds
        self.client = self._connect(timeout)
        self._publisher_client = self._connect(timeout)
        self._applier_client = self._connect(timeout + BLOCK_MS / 1000)
        self._checkpoint_script = self._applier_client.register_script(_CHECKPOINT)
        self._lease_script = self._applier_client.register_script(_LEASE)
        self._reseed_script = self._applier_client.register_script(_RESEED)
        self._publish_mapper_script = self._applier_client.register_script(_PUBLISH_MAPPER)
        self._mapper: Mapper | None = None  # a router with prompt contexts (share_mapper)
        self._mapper_adopted: str | None = None
        self._retire_script = self.client.register_script(_RETIRE)
        self._release_script = self.client.register_script(_RELEASE)
        self._spendings: list[SharedSpending] = []

        # Publishing: the core's outbox holds the events Redis has not acknowledged yet, in
        # order; from here on the core's feedback queues into it instead of learning.
        self._acked = threading.Condition()  # Redis acknowledged more
        self._acknowledged = 0  # the highest seq Redis has acknowledged
        self._published = 0
        self._publisher_ok = True

        # Applying: the stream position read, and per issuing replica the highest seq applied.
        self._applied_cond = threading.Condition()
        self._position = (0, 0)
        self._offset = 0  # stream entries up to and including the position
        self._seen: dict[str, int] = {}
        self._applied = 0
        self._rejected = 0
        self._lost = 0  # sequence numbers skipped over, in the log up to the position
        self._since_checkpoint = 0
        self._loaded = False
        self._epoch: str | None = None
        self._stateful = False  # learned from the log: worth re-seeding a lost one with
        self._stream_behind = False  # the stream restarted behind the position read
        self._applier_ok = False
        self._lag: int | None = None
        # Read rounds: started, and the last one that reached the stream's end (sync waits for
        # a round started after its call to reach the end).
        self._rounds = 0
        self._at_end = 0
        self._syncs = 0  # sync calls waiting: the applier reads without blocking meanwhile
        #: Called on the applier thread after each applied entry with the highest sequence
        #: number applied per replica (benchmarks measure lag with it).
        self.on_applied: Callable[[dict[str, int]], None] | None = None

        self._refused: SharedStateError | None = None  # another configuration holds the name
        self._closing = threading.Event()
        # Fail fast when reachable; otherwise the applier checks when it gets through.
        try:
            self._check_config(self.client)
        except redis.RedisError as error:
            self.health.failed("checking the configuration", error)
        self._outbox = core.share(self.id, config.buffer)
        self._start()

    def _start(self) -> None:
        self._threads = [
            threading.Thread(target=self._publish_loop, name="pickllm-publish", daemon=True),
            threading.Thread(target=self._apply_loop, name="pickllm-apply", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        _OPEN.add(self)

    def _connect(self, socket_timeout: float) -> redis.Redis:
        return self.config._client(socket_timeout, self.config.timeout_seconds)

    def spending(self, budget: Budget) -> SharedSpending:
        """The budget ``budget`` held in Redis for every router sharing this state."""
        spending = SharedSpending(budget, self.config, self.keys["budget"], self.id, self.health)
        self._spendings.append(spending)
        return spending

    # ==================== Publishing ====================

    def _publish_loop(self) -> None:
        client, take = self._publisher_client, self._outbox.take
        backoff = Backoff(self.config.reconnect_seconds)
        while True:
            # Nothing goes out before the configuration is known to match the stream's.
            while self._epoch is None or self._refused is not None:
                if self._closing.wait(self.config.reconnect_seconds):
                    return
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
                except Exception as error:  # supervised: any error is retried (module docs)
                    # Some may have gone through: sent again, readers drop the copies.
                    self._publisher_ok = False
                    self.health.failed("publishing", error)
                    if self._closing.wait(backoff.next()):
                        return
            backoff.reset()
            self._publisher_ok = True
            acknowledged = self._outbox.acknowledge(count)
            with self._acked:
                self._published += count
                self._acknowledged = acknowledged
                self._acked.notify_all()

    # ==================== Applying ====================

    def _apply_loop(self) -> None:
        client = self._applier_client
        backoff = Backoff(self.config.reconnect_seconds)
        while not self._closing.is_set():
            try:
                self._read_round(client)
                backoff.reset()
            except Exception as error:  # supervised: any error is retried (module docs)
                self._applier_ok = False
                if isinstance(error, SharedStateError) and "another configuration" in str(error):
                    self._refused = error
                self.health.failed("applying", error)
                with self._applied_cond:
                    self._applied_cond.notify_all()  # a waiting sync reports it
                self._closing.wait(backoff.next())

    def _read_round(self, client: redis.Redis) -> None:
        if not self._loaded:
            self._load(client)
            if not self._loaded:
                return  # re-seeded (or another replica is at it): load the result next round
        with self._applied_cond:
            self._rounds += 1
            round_, waited_for = self._rounds, self._syncs > 0
        pipe = client.pipeline(transaction=False)
        pipe.xread(
            {self.keys["events"]: _text(self._position)},
            count=BATCH,
            block=None if waited_for else BLOCK_MS,
        )
        pipe.get(self.keys["trimmed"])
        pipe.get(self.keys["config"])  # after the read: a reset before it shows here
        pipe.xinfo_stream(self.keys["events"])
        reply, trimmed, stored, info = pipe.execute(raise_on_error=False)
        for result in (reply, trimmed, stored):
            if isinstance(result, Exception):
                raise result
        document = self._parse_config(stored)
        if document is None or document["epoch"] != self._epoch:
            # The log this replica read is gone (or was re-seeded): what was just read belongs
            # to no epoch it knows; start again from the stored state.
            self._loaded = False
            return
        if trimmed is not None and stream_id(trimmed) > self._position:
            # Trimmed past what this replica has read: what it missed is in the checkpoint.
            self._loaded = False
            return
        if self._mapper is not None and not self._adopt_mapper(document):
            self._publish_mapper(client, stored, document)
        entries = reply[0][1] if reply else []
        if entries:
            self._apply(entries)
        self._refused = None
        with self._applied_cond:
            if isinstance(info, Exception):
                if "no such key" not in str(info):
                    raise info
                self._lag = 0  # no stream yet: nothing to apply
            else:
                self._lag = max(0, int(info["entries-added"]) - self._offset)
                if stream_id(info["last-generated-id"]) < self._position:
                    # Never for the stream this replica read: it was deleted and started again.
                    self._stream_behind = True
                    self._loaded = False
                    return
            if len(entries) < BATCH:
                self._at_end = round_
            self._applier_ok = True
            self._applied_cond.notify_all()
        if entries:
            self._maybe_checkpoint(client)
        for spending in self._spendings:
            spending.renew(client)

    def _parse_config(self, stored: Any) -> dict[str, Any] | None:
        """The stored configuration document, None if there is none; refused if it is not one
        this version wrote."""
        if stored is None:
            return None
        try:
            document: Any = json.loads(stored)
            if not isinstance(document, dict) or not isinstance(document.get("epoch"), str):
                raise ValueError("no epoch")
        except ValueError:
            raise SharedStateError(
                f"the configuration stored at {self.keys['config']!r} is not one this version "
                "of pickllm wrote (no epoch); remove it or use another name"
            ) from None
        return document

    def _config_document(self, seeded: str) -> str:
        """A new epoch of this replica's configuration; ``seeded`` says whether it starts empty
        or from a replica's learned state."""
        epoch = secrets.token_hex(8)
        document: dict[str, Any] = {"config": self._config, "epoch": epoch, "seeded": seeded}
        offer = None if self._mapper is None else self._mapper.offer()
        if offer is not None:  # the mapper this replica's learned state was assigned with
            document["mapper"] = base64.b64encode(offer).decode()
        return json.dumps(document)

    def _check_config(self, client: redis.Redis) -> dict[str, Any]:
        """The stored configuration document (stored first if there is none), refused if it is
        another configuration's."""
        client.set(self.keys["config"], self._config_document("empty"), nx=True)
        document = self._parse_config(client.get(self.keys["config"]))
        if document is None:  # removed in between: the next round stores it again
            raise SharedStateError("the configuration vanished while being stored")
        if document["config"] != self._config:
            raise SharedStateError(
                f"shared state {self.config.name!r} belongs to routers with another "
                f"configuration: {json.dumps(document['config'])}"
            )
        return document

    def share_mapper(self, mapper: Mapper) -> None:
        """Share the router's prompt mapper (see the module docs): from the next round on, this
        replica adopts the published mapper, or publishes its own fit if none is."""
        self._mapper = mapper

    def _adopt_mapper(self, document: dict[str, Any]) -> bool:
        """Adopt the mapper published in ``document``, if there is one (True)."""
        published = document.get("mapper")
        if self._mapper is None or not isinstance(published, str):
            return False
        if published != self._mapper_adopted:
            try:
                self._mapper.adopt(base64.b64decode(published, validate=True))
            except (ValueError, PickLLMError) as error:
                raise SharedStateError(f"the published prompt mapper is invalid: {error}") from None
            self._mapper_adopted = published
        return True

    def _publish_mapper(self, client: redis.Redis, stored: bytes, document: dict[str, Any]) -> None:
        """Offer this replica's fit as the epoch's mapper; the next round adopts whichever won."""
        offer = None if self._mapper is None else self._mapper.offer()
        if offer is None:
            return
        published = dict(document, mapper=base64.b64encode(offer).decode())
        self._publish_mapper_script(
            keys=[self.keys["config"]], args=[stored, json.dumps(published)], client=client
        )

    def _load(self, client: redis.Redis) -> None:
        """Start (or restart) from the current epoch's checkpoint, if there is one; re-seed a
        lost log from this replica's learned state first."""
        stored: Any = client.get(self.keys["config"])
        document = self._parse_config(stored)
        if self._stateful and self._epoch is not None:
            if document is None:
                self._reseed(client, "", "lost")
                return  # the next round loads whichever epoch won
            if (
                document["epoch"] != self._epoch
                and document.get("seeded") == "empty"
                and not client.exists(self.keys["checkpoint"])
            ):
                # A replica that had learned nothing stored a fresh epoch over a lost log: this
                # one's learned state is worth more (only before any checkpoint of it).
                self._reseed(client, stored.decode(), "empty")
                return
            if document["epoch"] == self._epoch and self._stream_behind:
                # The stream was deleted and written again: what was read from it is gone.
                self._reseed(client, stored.decode(), "stream")
                return
        document = self._check_config(client)
        pipe = client.pipeline(transaction=False)
        pipe.get(self.keys["checkpoint"])
        pipe.get(self.keys["checkpoint-learned"])
        raw, learned = pipe.execute()
        with self._applied_cond:
            if raw is not None:
                checkpoint = self._parse_checkpoint(raw, learned, document["epoch"])
                try:
                    self._core.restore_learned(learned)
                except PickLLMError as error:
                    raise SharedStateError(f"invalid checkpoint: {error}") from None
                self._position = stream_id(checkpoint["position"])
                self._offset = checkpoint["offset"]
                self._seen = dict(checkpoint["seen"])
                self._lost = checkpoint["lost"]
                self._stateful = True
            else:
                # No checkpoint: the shared state is the whole stream, read from its start. A
                # router restored from a snapshot forgets what it learned elsewhere.
                self._core.restore_learned(_NOTHING_LEARNED)
                self._position, self._offset, self._seen, self._lost = (0, 0), 0, {}, 0
            if self._epoch is not None and self._epoch != document["epoch"]:
                self.health.failed(
                    "reading", SharedStateError(f"the log was reset (epoch {document['epoch']})")
                )
            self._epoch = document["epoch"]
            self._stream_behind = False
            self._loaded = True
            self._applied_cond.notify_all()
        self._adopt_mapper(document)

    def _parse_checkpoint(self, raw: bytes, learned: Any, epoch: str) -> dict[str, Any]:
        try:
            checkpoint: Any = json.loads(raw)
            if checkpoint.get("v") != CHECKPOINT_VERSION:
                raise ValueError(f"format {checkpoint.get('v')!r} is not {CHECKPOINT_VERSION}")
            if checkpoint.get("epoch") != epoch:
                raise ValueError(f"epoch {checkpoint.get('epoch')!r} is not the log's {epoch!r}")
            stream_id(checkpoint["position"])
            if not isinstance(checkpoint["offset"], int) or not isinstance(checkpoint["lost"], int):
                raise ValueError("offset and lost must be integers")
            if not all(isinstance(v, int) for v in dict(checkpoint["seen"]).values()):
                raise ValueError("seen must map replicas to integers")
            if learned is None:
                raise ValueError("its learned part is missing")
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise SharedStateError(f"unreadable checkpoint: {error}") from None
        return dict(checkpoint)

    def _checkpoint_document(self, epoch: str) -> str:
        return json.dumps(
            {
                "v": CHECKPOINT_VERSION,
                "epoch": epoch,
                "position": _text(self._position),
                "offset": self._offset,
                "seen": self._seen,
                "lost": self._lost,
                "config": self._config,
            }
        )

    def _reseed(self, client: redis.Redis, expected: str, why: str) -> None:
        """Store this replica's learned state as the checkpoint of a new epoch (see
        ``_RESEED``); whether it won or another replica did, the next round loads the result."""
        document = self._config_document("state")
        epoch = json.loads(document)["epoch"]
        with self._applied_cond:
            checkpoint = self._checkpoint_document(epoch)
            learned = memoryview(self._core.learned())  # see _maybe_checkpoint
        keys = [
            self.keys[k]
            for k in (
                "config",
                "checkpoint",
                "checkpoint-learned",
                "checkpoint-position",
                "trimmed",
                "lease",
                "events",
            )
        ]
        lease_ms = int(self.config.lease_seconds * 1000)
        args: list[str | memoryview | int] = [expected, document, checkpoint, learned]
        args += [self.id, lease_ms, why]
        if self._reseed_script(keys=keys, args=args, client=client):
            self._epoch = epoch  # reloads its own checkpoint next round: no reset to report
            self._stream_behind = False
            self.health.failed(
                "reading", SharedStateError(f"the log was lost; re-seeded it (epoch {epoch})")
            )
        else:
            self._closing.wait(self.config.reconnect_seconds)  # another replica is at it

    def _apply(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        apply_entry = self._core.apply_entry
        seen = self._seen
        hook = self.on_applied
        applied = rejected = lost = 0
        for _, fields in entries:
            try:
                # Decoded and learned from in the core; copies (at or below seen[replica]) are
                # skipped, invalid events counted, gaps counted as lost, by every replica alike.
                done, refused, missing = apply_entry(fields.get(b"e", b""), seen)
            except PickLLMError:
                rejected += 1  # not an entry of this format: skipped whole
                continue
            applied += done
            rejected += refused
            lost += missing
            if hook is not None:
                hook(seen)
        with self._applied_cond:
            self._position = stream_id(entries[-1][0])
            self._offset += len(entries)
            self._applied += applied
            self._rejected += rejected
            self._lost += lost
            self._since_checkpoint += applied + rejected
            self._stateful = True
            self._applied_cond.notify_all()

    def _maybe_checkpoint(self, client: redis.Redis) -> None:
        if self._since_checkpoint < self.config.checkpoint_every or self._epoch is None:
            return
        self._since_checkpoint = 0
        lease_ms = int(self.config.lease_seconds * 1000)
        if not self._lease_script(
            keys=[self.keys["lease"]], args=[self.id, lease_ms], client=client
        ):
            return
        # The sequence map loses the replicas that retired before the position: every
        # replica starting from this checkpoint does without them (the others keep theirs,
        # harmlessly: a retired replica publishes nothing more).
        retired: Any = client.hgetall(self.keys["retired"])
        pruned = [r.decode() for r, at in retired.items() if stream_id(at) <= self._position]
        with self._applied_cond:
            for replica in pruned:
                self._seen.pop(replica, None)
        document = self._checkpoint_document(self._epoch)
        keys = [
            self.keys[k]
            for k in (
                "checkpoint",
                "checkpoint-learned",
                "checkpoint-position",
                "events",
                "trimmed",
                "config",
                "retired",
            )
        ]
        # A memoryview: redis-py sends it as it is, where it copies bytes under the GIL
        # (a pause of about 100 ms for 16 MB; benches/checkpoint_pause.py).
        learned = memoryview(self._core.learned())
        args: list[str | memoryview] = [_text(self._position), document, learned, self._epoch]
        self._checkpoint_script(keys=keys, args=[*args, *pruned], client=client)

    # ==================== Waiting and reporting ====================

    def sync(self, timeout: float) -> None:
        """Return once every event published before the call has been applied locally; raise
        :class:`SyncTimeoutError` after ``timeout`` seconds otherwise, whatever Redis does."""
        deadline = time.monotonic() + timeout
        self._check_usable()

        def left() -> float:
            return max(0.0, deadline - time.monotonic())

        target = self._outbox.counts()[0]
        with self._acked:
            if not self._acked.wait_for(
                lambda: self._acknowledged >= target or self._refused is not None, left()
            ):
                raise SyncTimeoutError(
                    f"{target - self._acknowledged} local event(s) not published within "
                    f"{timeout} s{self._last_error_text()}"
                )
        self._check_usable()
        # A read round started from now on that reaches the stream's end has applied every
        # event published before this call, this replica's own included.
        with self._applied_cond:
            started = self._rounds
            self._syncs += 1
            try:
                done = self._applied_cond.wait_for(
                    lambda: self._at_end > started or self._refused is not None, left()
                )
            finally:
                self._syncs -= 1
            if not done:
                raise SyncTimeoutError(
                    f"applied up to {_text(self._position)} but not to the end of the stream "
                    f"within {timeout} s{self._last_error_text()}"
                )
        self._check_usable()

    def _last_error_text(self) -> str:
        last = self.health.last_error
        return "" if last is None else f" (last error: {last})"

    def _check_usable(self) -> None:
        if self._refused is not None:
            raise self._refused

    def status(self) -> SharedStatus:
        """The replica's state as its threads last saw it: never waits on Redis."""
        _, _, buffered, dropped = self._outbox.counts()
        with self._acked:
            published = self._published
            publisher_ok = self._publisher_ok
        with self._applied_cond:
            connected = self._applier_ok and publisher_ok
            return SharedStatus(
                connected=connected,
                lag=self._lag if connected else None,
                buffered=buffered,
                dropped=dropped,
                published=published,
                applied=self._applied,
                rejected=self._rejected,
                position=_text(self._position),
                lost=self._lost,
                errors=self.health.errors,
                last_error=self.health.last_error,
                epoch=self._epoch,
            )

    # ==================== Fork and close ====================

    def _forked(self) -> None:
        """In a child process after ``fork()`` (gunicorn ``--preload``, say): the threads are
        gone and locks a parent thread held would stay held. Carry on as a new replica: a new
        id (the parent goes on publishing under its own), an empty outbox (the events in it
        are the parent's to publish), new locks and threads. The learned state, position and
        sequence numbers seen are the parent's at the fork, which is where the child reads
        on from (entries the parent was applying are copies here, and skipped)."""
        self.id = secrets.token_hex(8)
        self._outbox.restart(self.id)
        self._acked = threading.Condition()
        self._acknowledged = self._published = 0
        self._applied_cond = threading.Condition()
        self._syncs = 0
        self._closing = threading.Event()
        self.health._lock = threading.Lock()
        for spending in self._spendings:
            spending._forked(self.id)
        self._start()

    def close(self, timeout: float = 5.0) -> None:
        """Publish what is queued (within ``timeout``) and stop both threads; then, in one
        exchange with Redis (at most ``timeout_seconds``), hand the checkpoint lease on and,
        if everything was published, retire from the sequence map."""
        _OPEN.discard(self)
        self._closing.set()
        self._outbox.close()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        stopped = not any(thread.is_alive() for thread in self._threads)
        with contextlib.suppress(Exception):  # best effort: Redis may be away
            if stopped:
                # Hand the checkpoint lease on at once rather than when it expires.
                self._release_script(keys=[self.keys["lease"]], args=[self.id])
            if stopped and self._published and self._outbox.counts()[2] == 0:
                # Everything published: it may retire (see _RETIRE).
                self._retire_script(
                    keys=[self.keys["retired"], self.keys["events"]], args=[self.id]
                )
        for client in [self.client, self._publisher_client, self._applier_client]:
            with contextlib.suppress(Exception):
                client.close()
                client.connection_pool.disconnect()  # a pool given to Redis() is not closed
        for spending in self._spendings:
            with contextlib.suppress(Exception):
                spending.close()

    async def aclose(self, timeout: float = 5.0) -> None:
        """``close`` without blocking the event loop, after sending the settlements the
        shared budgets queued on it."""
        for spending in self._spendings:
            await spending.flush()
        await anyio.to_thread.run_sync(self.close, timeout)
