"""Prompt contexts with shared state (issue 23): worker processes on a real redis-server fit their
own warm-ups, one fit is published, and every replica assigns prompts with it; learned state
stays a function of the ordered events, for late joiners and after Redis restarts empty.

Workers are driven by lines on their stdin/stdout (see prompt_worker.py): every wait here is for
an event (a line), never for a timer.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis

from pickllm import PickLLMError, PromptContexts, RedisState, Router
from redis_servers import RedisServer

WORKER = Path(__file__).with_name("prompt_worker.py")


class Worker:
    def __init__(self, server: RedisServer, seed: int) -> None:
        args = {"url": server.url, "name": "prompts", "seed": seed, "warmup": 30}
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER), json.dumps(args)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ask(self, line: str) -> str:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            raise AssertionError(f"worker exited with {self.process.wait()} after {line!r}")
        return answer

    def route(self, n: int, offset: int) -> None:
        assert self.ask(f"route {n} {offset}").strip() == "routed"

    def adopted(self) -> None:
        assert self.ask("adopted").strip() == "adopted"

    def state(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.ask("state"))
        return result

    def close(self) -> None:
        """Quit (the router closes and publishes what it holds), then reap the process."""
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        if self.process.poll() is None:
            self.process.stdin.write("quit\n")
        self.process.stdin.close()
        self.process.wait()
        self.process.stdout.close()


def same_state(workers: list[Worker]) -> dict[str, Any]:
    states = [w.state() for w in workers]
    first = states[0]
    assert first["mapper"] is not None
    assert first["contexts"] is not None
    assert len(set(first["contexts"])) == 3, "the three tasks are three clusters"
    for other in states[1:]:
        assert other["mapper"] == first["mapper"], "one mapper for all replicas"
        assert other["contexts"] == first["contexts"], "the same prompt, the same cluster"
        assert other["learned"] == first["learned"], "the same events, the same learned state"
    return first


def test_replicas_adopt_one_published_mapper_and_learn_alike(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, persistent=False)
    workers: list[Worker] = []
    try:
        one, two = Worker(server, 1), Worker(server, 2)
        workers += [one, two]
        # Different warm-up prompts: each fits its own clustering, one of the two is published.
        one.route(40, 0)
        two.route(40, 500)
        one.adopted()
        two.adopted()
        one.route(60, 100)
        two.route(60, 600)
        first = same_state(workers)
        learned = json.loads(first["learned"])["contexts"]
        assert {c for c in learned if c.startswith("cluster-")}, "warm-up credited to clusters"

        late = Worker(server, 3)  # no warm-up of its own: adopts the published mapper
        workers.append(late)
        late.adopted()
        assert same_state(workers)["mapper"] == first["mapper"]

        server.kill()  # SIGKILL, no persistence: Redis comes back empty
        server.start()
        one.route(30, 200)  # the lease holder re-seeds, the mapper with the configuration
        after = Worker(server, 4)
        workers.append(after)
        after.adopted()
        assert same_state(workers)["mapper"] == first["mapper"]
        client = redis.Redis.from_url(server.url)
        stored = json.loads(client.get("pickllm:prompts:config") or b"{}")
        client.close()
        assert "mapper" in stored, "the re-seeded configuration carries the mapper"
    finally:
        for worker in workers:
            worker.close()
        server.stop()


def test_prompts_never_reach_redis(tmp_path: Path) -> None:
    """Prompts stay in the process: only the fitted mapper (hashed features) is published."""
    server = RedisServer(tmp_path, persistent=False)
    worker = Worker(server, 1)
    try:
        worker.route(40, 0)
        worker.adopted()
        worker.route(10, 100)
        worker.state()
        client = redis.Redis.from_url(server.url)
        dump = b"".join(
            client.dump(key) or b"" for key in client.keys("pickllm:prompts:*")
        ) + b"".join(str(entry).encode() for entry in client.xrange("pickllm:prompts:events"))
        client.close()
        for word in ("python", "derivative", "painter", "apple"):
            assert word.encode() not in dump
    finally:
        worker.close()
        server.stop()


def test_a_shared_router_with_prompt_contexts_restores_from_its_snapshot(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, persistent=False)
    state = RedisState(url=server.url, name="restore", reconnect_seconds=0.02)
    router = Router(["a", "b"], seed=1, shared=state, contexts=PromptContexts(warmup=10))
    try:
        blob = router.snapshot()
        with Router.restore(blob, shared=state) as restored:
            assert restored.prompt_contexts == PromptContexts(warmup=10)
    finally:
        router.close()
        server.stop()


@pytest.mark.parametrize("garbage", ["not base64!", "aGVsbG8="])
def test_a_garbage_published_mapper_is_reported_not_adopted(tmp_path: Path, garbage: str) -> None:
    server = RedisServer(tmp_path, persistent=False)
    try:
        state = RedisState(url=server.url, name="bad", reconnect_seconds=0.02)
        with Router(["a", "b"], seed=1, shared=state, contexts=PromptContexts(warmup=10)) as router:
            router.sync(timeout=30)
            client = redis.Redis.from_url(server.url)
            document = json.loads(client.get("pickllm:bad:config") or b"{}")
            client.set("pickllm:bad:config", json.dumps(dict(document, mapper=garbage)))
            client.close()
            for _ in range(200):  # the applier's next rounds read it and report it
                with contextlib.suppress(PickLLMError):
                    router.sync(timeout=5)
                if "prompt mapper" in (router.shared_status().last_error or ""):
                    break
            assert "prompt mapper" in (router.shared_status().last_error or "")
            assert router._mapper is not None
            assert router._mapper.fitted is None
    finally:
        server.stop()
