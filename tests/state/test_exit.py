"""A process that exits with a shared-state router open exits cleanly (issue 19, item 2): the
open replicas are closed at exit, their threads joined and their queued feedback published."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import redis

from redis_servers import RedisServer

WORKER = Path(__file__).with_name("exit_worker.py")
RUNS = 20
AT_ONCE = 5


def test_exiting_with_a_router_open_is_clean(redis_server: RedisServer) -> None:
    outputs = []
    for first in range(0, RUNS, AT_ONCE):
        workers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-X",
                    "faulthandler",
                    str(WORKER),
                    json.dumps(
                        {"url": redis_server.url, "name": "exit", "seed": seed, "decisions": 200}
                    ),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for seed in range(first, first + AT_ONCE)
        ]
        for worker in workers:
            out, err = worker.communicate(timeout=120)
            assert worker.returncode == 0, err
            assert "Fatal Python error" not in err
            outputs.append(json.loads(out.splitlines()[-1]))
    assert outputs == [{"threads_at_exit": []}] * RUNS, "joined before the interpreter finalized"
    client = redis.Redis.from_url(redis_server.url)
    events = [
        event
        for _, fields in client.xrange("pickllm:exit:events")
        for event in json.loads(fields[b"e"])["e"]
    ]
    client.close()
    assert len(events) == RUNS * 201
    assert sorted(e[1] for e in events if e[1].startswith("last-")) == sorted(
        f"last-{seed}" for seed in range(RUNS)
    ), "the feedback queued at exit was published"
