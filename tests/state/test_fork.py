"""A router built before fork() goes on in each child as a replica of its own: new id, new
threads, nothing of the parent's published twice (issue 21, item 6)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from redis_servers import RedisServer

WORKER = Path(__file__).with_name("fork_worker.py")


def test_children_of_a_forked_router_publish_as_replicas_of_their_own(
    redis_server: RedisServer,
) -> None:
    run = subprocess.run(
        [sys.executable, str(WORKER), json.dumps({"url": redis_server.url, "name": "fork"})],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    children = [line for line in lines if "child" in line]
    (parent,) = [line for line in lines if "parent" in line]
    assert len(children) == 2
    ids = {parent["parent"], *(child["id"] for child in children)}
    assert len(ids) == 3, "each child publishes as a replica of its own"
    for child in children:
        status = child["status"]
        assert (status["connected"], status["published"], status["buffered"]) == (True, 50, 0)
        assert status["lost"] == 0
    assert parent["counts"] == {"parent": 110, "child-0": 50, "child-1": 50}
    assert parent["status"]["published"] == 110
    assert parent["status"]["lost"] == 0
