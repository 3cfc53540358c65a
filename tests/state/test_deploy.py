"""Deployment traps: a password never shown, an unreachable Redis logged and reported at once
(issue 21, item 6)."""

from __future__ import annotations

import logging

import pytest
import redis

from pickllm import ConfigError, RedisState, Router
from redis_servers import RedisServer, free_port, wait_for

SECRET = "s3cret-pass"


def test_the_password_is_never_shown(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    client = redis.Redis.from_url(redis_server.url)
    client.config_set("requirepass", SECRET)
    client.close()
    url = f"redis://default:{SECRET}@127.0.0.1:{redis_server.port}/0"
    state = RedisState(url=url, name="pw")
    for text in (repr(state), str(state), repr([state])):
        assert SECRET not in text
        assert "default:***@127.0.0.1" in text
    with Router(["a", "b"], seed=1, shared=state) as router:  # the password works
        router.feedback(router.select("x"), accuracy=1.0)
        router.sync(timeout=30)
        assert router.shared_status().applied == 1
    with pytest.raises(ConfigError) as refused:  # a typo: the error quotes the value given
        RedisState(urll=url, name="pw")  # type: ignore[call-arg]
    assert SECRET not in str(refused.value)
    assert "default:***@" in str(refused.value)
    caplog.set_level(logging.WARNING, logger="pickllm.state")
    nowhere = RedisState(url=f"redis://:{SECRET}@127.0.0.1:{free_port()}/0", name="pw")
    with Router(["a", "b"], seed=1, shared=nowhere) as router:
        wait_for(lambda: router.shared_status().errors >= 2)
        status = router.shared_status()
        assert not status.connected
        assert "Connection refused" in (status.last_error or "")
        assert SECRET not in repr(status)
    assert "Connection refused" in caplog.text, "an unreachable Redis is logged at once"
    assert SECRET not in caplog.text
