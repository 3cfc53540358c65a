"""The README's shared-state example, run as written against a redis-server this test started.

The README names Redis's default address (127.0.0.1:6379); a test must never write into whatever
listens there, so the address is swapped for the fixture's free port, and the test then checks
that the example's router really learns through that server.
"""

from __future__ import annotations

import re

import redis

from conftest import REPO_ROOT
from pickllm import Router
from redis_servers import RedisServer

README_URL = "redis://127.0.0.1:6379/0"


def readme_block() -> str:
    text = (REPO_ROOT / "README.md").read_text()
    section = text.split("## Learn as one across workers and replicas\n", 1)[1].split("\n## ")[0]
    (block,) = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    return block


def test_the_readme_example_learns_through_the_test_s_own_server(
    redis_server: RedisServer,
) -> None:
    block = readme_block()
    assert README_URL in block
    namespace: dict[str, object] = {}
    exec(compile(block.replace(README_URL, redis_server.url), "README.md", "exec"), namespace)
    router = namespace["router"]
    assert isinstance(router, Router)
    try:
        decision = router.select("billing")
        router.feedback(decision, accuracy=1.0, cost=0.0, latency=0.1)
        router.sync(timeout=30)
        assert router.shared_status().connected
        assert sum(router.feedback_counts("billing").values()) == 1
    finally:
        router.close()
    client = redis.Redis.from_url(redis_server.url)
    try:
        keys = [key.decode() for key in client.keys("*")]
    finally:
        client.close()
    # The feedback went to the server the test started, under the example's name.
    assert keys
    assert all(key.startswith("pickllm:support-bot:") for key in keys), keys
