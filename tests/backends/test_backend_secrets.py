"""API keys never show up in repr, logs, exception messages or pickled errors."""

from __future__ import annotations

import logging
import pickle
import traceback
from typing import Any

import pytest

from pickllm.backends import (
    Anthropic,
    BackendError,
    ClientError,
    Message,
    OpenAICompatible,
    RateLimitError,
)
from pickllm.errors import ConfigError

KEY = "sk-proj-SECRET-a1b2c3d4e5f6g7h8"
ANT_KEY = "sk-ant-api03-SECRET-z9y8x7w6"
MESSAGES: list[Message] = [{"role": "user", "content": "hi"}]


def assert_clean(text: str) -> None:
    assert KEY not in text
    assert ANT_KEY not in text
    assert "SECRET" not in text


def test_repr_hides_keys_and_header_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    backends = [
        OpenAICompatible("http://127.0.0.1:1/v1"),
        OpenAICompatible(
            "http://127.0.0.1:1/v1", api_key=KEY, headers={"X-Custom-Auth": "SECRET-token"}
        ),
        Anthropic(api_key=ANT_KEY, base_url="http://127.0.0.1:1"),
    ]
    for backend in backends:
        assert_clean(repr(backend))
        assert_clean(str(backend))
        assert_clean(backend.label)
        assert "***" in repr(backend)
    assert "X-Custom-Auth" in repr(backends[1])  # the header's name is fine to show


def test_key_echoed_in_an_error_body_is_redacted(server: Any) -> None:
    # OpenAI's own 401 quotes part of the key; a proxy may quote all of it, or the header.
    body = {
        "error": {
            "message": f"Incorrect API key provided: {KEY} (Bearer {KEY})",
            "type": "invalid_request_error",
            "code": "invalid_api_key",
        }
    }
    server.queue(server.json(body, 401))
    with (
        OpenAICompatible(server.url + "/v1", api_key=KEY) as backend,
        pytest.raises(ClientError) as info,
    ):
        backend.complete(MESSAGES, model="m")
    error = info.value
    assert_clean(str(error))
    assert_clean(error.detail)
    assert "Incorrect API key provided: ***" in str(error)
    assert_clean("".join(traceback.format_exception(error)))


def test_custom_credential_header_is_redacted_too(server: Any) -> None:
    server.queue(server.raw(b"bad token SECRET-token-42 for you", 403, "text/plain"))
    headers = {"api-key": "SECRET-token-42"}
    with (
        OpenAICompatible(server.url + "/v1", api_key_env=None, headers=headers) as backend,
        pytest.raises(ClientError) as info,
    ):
        backend.complete(MESSAGES, model="m")
    assert server.last.headers["api-key"] == "SECRET-token-42"
    assert "SECRET-token-42" not in str(info.value)
    assert "bad token *** for you" in str(info.value)


def test_nothing_logged_contains_the_key(server: Any, caplog: pytest.LogCaptureFixture) -> None:
    # Everything at DEBUG, httpx's and httpcore's loggers included.
    caplog.set_level(logging.DEBUG)
    server.queue(
        server.json({"choices": [{"index": 0, "message": {"content": "ok"}}]}),
        server.json({"error": {"message": f"bad key {KEY}"}}, 429),
    )
    with OpenAICompatible(server.url + "/v1", api_key=KEY) as backend:
        backend.complete(MESSAGES, model="m")
        with pytest.raises(RateLimitError):
            backend.complete(MESSAGES, model="m")
    with Anthropic(
        api_key=ANT_KEY,
        base_url=f"http://127.0.0.1:{server.url.rsplit(':', 1)[1]}",
    ) as backend:
        server.queue(
            server.json(
                {
                    "type": "error",
                    "error": {"type": "authentication_error", "message": f"bad {ANT_KEY}"},
                },
                401,
            )
        )
        with pytest.raises(ClientError):
            backend.complete(MESSAGES, model="m")
    assert any(r.name == "pickllm.backends" for r in caplog.records)
    assert any(r.name.startswith("httpcore") for r in caplog.records)
    assert_clean(caplog.text)
    for record in caplog.records:
        assert_clean(repr(record.args))


@pytest.mark.parametrize("bad", ["sk-abc\n", "sk-abc\r\nX-Injected: 1", "sk-ключ-SECRET"])
def test_key_that_is_not_a_valid_header_is_refused_without_echo(bad: str) -> None:
    # Sent as is, h11 would raise "Illegal header value b'Bearer sk-...'" quoting the key.
    for make in (
        lambda: OpenAICompatible("http://127.0.0.1:1/v1", api_key=bad),
        lambda: Anthropic(api_key=bad, base_url="http://127.0.0.1:1"),
    ):
        with pytest.raises(ConfigError) as info:
            make()
        assert bad.strip() not in str(info.value)
        assert "not shown" in str(info.value)


def test_url_with_credentials_is_refused_without_echo() -> None:
    with pytest.raises(ConfigError, match="must not contain credentials") as info:
        OpenAICompatible("http://user:SECRET-pw@127.0.0.1:1/v1")
    assert "SECRET" not in str(info.value)


def test_errors_pickle_and_keep_their_fields(server: Any) -> None:
    server.queue(
        server.json({"error": {"message": "slow down"}}, 429, headers={"Retry-After": "4"})
    )
    with (
        OpenAICompatible(server.url + "/v1", api_key=KEY) as backend,
        pytest.raises(RateLimitError) as info,
    ):
        backend.complete(MESSAGES, model="m")
    copy = pickle.loads(pickle.dumps(info.value))
    assert type(copy) is RateLimitError
    assert isinstance(copy, BackendError)
    assert str(copy) == str(info.value)
    assert (copy.retry_after, copy.status, copy.model, copy.backend) == (
        4.0,
        429,
        "m",
        backend.label,
    )
    assert copy.latency == info.value.latency
