"""Worker processes sharing state through a real redis-server: the guarantees of issue 12.

Workers are driven by lines on their stdin/stdout (see replica_worker.py): every wait here is
for an event (a line, a process exit), never for a timer.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import redis

from redis_servers import RedisServer

WORKER = Path(__file__).with_name("replica_worker.py")


class Worker:
    def __init__(self, server: RedisServer, seed: int, phases: list[int], **extra: Any) -> None:
        args = {"url": server.url, "name": "fleet", "seed": seed, "phases": phases, **extra}
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER), json.dumps(args)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.acked = 0
        kind, self.replica = self.expect("replica")
        assert kind == "replica"

    def expect(self, kind: str) -> list[str]:
        """Read lines until one starts with ``kind``; remembers the acknowledged count."""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            words = line.split()
            if words[0] == "acked":
                self.acked = int(words[1])
            if words[0] == kind:
                return words
        raise AssertionError(f"worker exited with {self.process.wait()} before {kind!r}")

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def dump(self) -> dict[str, Any]:
        self.send("dump")
        assert self.process.stdout is not None
        result: dict[str, Any] = json.loads(self.process.stdout.readline())
        self.close()
        assert self.process.returncode == 0
        return result

    def close(self) -> None:
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()
        self.process.wait()


def test_four_workers_learn_as_one(redis_server: RedisServer) -> None:
    workers = [Worker(redis_server, seed, [25_000]) for seed in range(4)]
    for worker in workers:  # every worker's own feedback is in Redis before anyone dumps
        worker.expect("phase")
    dumps = [worker.dump() for worker in workers]
    assert all(d["learned"] == dumps[0]["learned"] for d in dumps)
    assert all(d["total"] == 100_000 for d in dumps)
    assert all(d["status"]["applied"] <= 100_000 for d in dumps)  # less after a reload
    assert all(d["status"]["dropped"] == d["status"]["rejected"] == 0 for d in dumps)
    learned = json.loads(dumps[0]["learned"])
    counts = sum(sum(learner["feedbacks"]) for learner in learned["contexts"].values())
    assert counts == 100_000


def stream_events(server: RedisServer) -> list[tuple[str, int]]:
    client = redis.Redis.from_url(server.url)
    entries = client.xrange("pickllm:fleet:events")
    client.close()
    documents = [json.loads(fields[b"e"]) for _, fields in entries]
    return [(d["r"], event[0]) for d in documents for event in d["e"]]


def test_a_killed_worker_loses_nothing_acknowledged_and_a_new_one_catches_up(
    redis_server: RedisServer,
) -> None:
    # One checkpoint, at 20,000 events, taken after the kill (the stream then holds fewer), so
    # it is taken by a survivor, nothing is trimmed, and the whole stream stays readable here.
    options = {"checkpoint_every": 20_000}
    victim, *survivors = (Worker(redis_server, s, [3_000, 10_000], **options) for s in range(3))
    for worker in (victim, *survivors):
        worker.expect("phase")
    victim.send("go")
    victim.expect("acked")
    victim.expect("acked")
    victim.process.send_signal(signal.SIGKILL)
    victim.close()
    for worker in survivors:
        worker.send("go")
    for worker in survivors:
        worker.expect("phase")

    events = stream_events(redis_server)
    distinct = set(events)
    assert len(events) == len(distinct), "nothing was published twice here"
    published: dict[str, int] = {}
    for replica, seq in distinct:
        published[replica] = max(seq, published.get(replica, 0))
    per_replica = Counter(replica for replica, _ in distinct)
    assert per_replica == published, "no gaps: every replica's events are 1..last"
    assert published[victim.replica] >= victim.acked >= 5_000, "acknowledged means in Redis"

    late = Worker(redis_server, 9, [], **options)
    dumps = [worker.dump() for worker in (*survivors, late)]
    assert all(d["learned"] == dumps[0]["learned"] for d in dumps)
    assert all(d["total"] == len(distinct) for d in dumps), "each event counted exactly once"
    assert all(d["seen"] == published for d in dumps)
    assert dumps[-1]["status"]["applied"] < len(distinct), "the new worker began at a checkpoint"
