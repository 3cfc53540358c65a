"""API keys never leave pickllm through the router's public surface.

tests/backends/test_backend_secrets.py covers the backends alone; this file drives whole routers
against a real local server and looks everywhere a key could surface: ``repr``/``str`` of
backends, models, routers and results, every log record at DEBUG (pickllm, httpx, httpcore and
the rest), the messages, ``repr``s, tracebacks and pickles of every error raised (including
AllModelsFailedError and the backend errors behind its attempts), snapshots, pickled routers and
the file ``save`` writes. Successful, failing (a 401 that echoes the key and its Bearer header, a
500, garbage) and streaming calls, sync and async, with the key given as an argument or taken
from OPENAI_API_KEY.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest

from model_farm import Behaviour, ModelFarm, answer, fail, model_farm
from pickllm import LearningAutomaton, Router, SnapshotError, UnknownModelError
from pickllm.backends import OpenAICompatible
from pickllm.models import Model
from pickllm.routing import AllModelsFailedError, RouteResult
from pickllm.scorers import MultipleChoice

KEY = "sk-proj-LEAKCANARY-7f3e9a1c5b2d8e4f"
SECRETS = (KEY, f"Bearer {KEY}", "LEAKCANARY")
QUESTION = "Which is even?\nA) 3\nB) 4"

BEHAVIOURS = {
    "good": answer("The answer is B."),
    "echo401": Behaviour(
        status=401,
        body=b'{"error": {"message": "Incorrect API key provided: {authorization}", '
        b'"type": "invalid_request_error", "code": "invalid_api_key"}}',
        echo_auth=True,
    ),
    "echo500": Behaviour(
        status=500, body=b"upstream rejected header Authorization: {authorization}", echo_auth=True
    ),
    "broken": fail(500),
    "garbage": Behaviour(body=b"<html>{authorization}</html>", echo_auth=True),
}


def assert_clean(what: str, text: str | bytes) -> None:
    data = text if isinstance(text, bytes) else text.encode()
    for secret in SECRETS:
        assert secret.encode() not in data, f"{what} leaks {secret!r}"


def error_surfaces(error: BaseException) -> dict[str, str | bytes]:
    """Everything an error shows: message, repr, traceback, pickle, and each attempt's text."""
    surfaces: dict[str, str | bytes] = {
        "str": str(error),
        "repr": repr(error),
        "traceback": "".join(traceback.format_exception(error)),
        "pickle": pickle.dumps(error),
        "args": repr(error.args),
    }
    for i, attempt in enumerate(getattr(error, "attempts", ())):
        surfaces[f"attempt {i}"] = repr(attempt)
    cause = error.__cause__ or error.__context__
    if cause is not None:
        surfaces["cause"] = "".join(traceback.format_exception(cause))
    return surfaces


@pytest.fixture
def farm() -> Iterator[ModelFarm]:
    with model_farm(BEHAVIOURS) as farm:
        yield farm


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every record of every logger at DEBUG, httpx and httpcore included."""
    caplog.set_level(logging.DEBUG)
    for name in ("pickllm", "pickllm.backends", "httpx", "httpcore", "asyncio"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


_backends: list[OpenAICompatible] = []


@pytest.fixture(autouse=True)
def close_backends() -> Iterator[None]:
    """Close every backend a test made, whether it passed or not."""
    yield
    while _backends:
        _backends.pop().close()


def models(farm: ModelFarm, *names: str, from_env: bool = False) -> list[Model]:
    backend = (
        OpenAICompatible(base_url=farm.url)
        if from_env
        else OpenAICompatible(base_url=farm.url, api_key=KEY)
    )
    _backends.append(backend)
    return [Model(name, backend=backend, input_price=1.0, output_price=2.0) for name in names]


def check_logs(caplog: pytest.LogCaptureFixture, http_logger: str = "httpx") -> None:
    """``http_logger``: who logs each request, so that the log really covered the HTTP layer:
    httpx at INFO for sync calls; the backends at DEBUG for async ones (sent through aiohttp,
    they skip httpx's client and its log line)."""
    assert caplog.records, "nothing was logged: the check would be empty"
    for record in caplog.records:
        assert_clean(f"log record {record.name}", record.getMessage())
        assert_clean(f"log record {record.name} args", repr(record.args))
    assert_clean("formatted log", caplog.text)
    assert any(r.name == http_logger and "POST " in r.getMessage() for r in caplog.records)


def check_router(router: Router, tmp_path: Path) -> None:
    assert_clean("repr(router)", repr(router))
    assert_clean("str(router)", str(router))
    assert_clean("snapshot", router.snapshot())
    assert_clean("pickled router", pickle.dumps(router))
    path = tmp_path / "router.pickllm"
    router.save(path)
    assert_clean("saved file", path.read_bytes())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["router.pickllm"]  # no stray temp file


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("from_env", [False, True], ids=["argument", "environment"])
def test_sync_routes_leak_no_key(
    farm: ModelFarm,
    debug_logs: pytest.LogCaptureFixture,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    stream: bool,
    from_env: bool,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    pool = models(farm, *BEHAVIOURS, from_env=from_env)
    for model in pool:
        assert_clean("repr(model)", repr(model))
        assert_clean("str(model)", str(model))
        assert_clean("repr(backend)", repr(model.backend))
        assert_clean("str(backend)", str(model.backend))
    # Failing models first by the prior, so that each query meets failures before "good".
    prior = {"echo401": 1000.0, "echo500": 500.0, "garbage": 200.0, "broken": 100.0, "good": 1.0}
    router = Router(
        pool,
        policy=LearningAutomaton(),
        prior=prior,
        scorer=MultipleChoice(),
        max_attempts=5,
        stream=stream,
        seed=1,
    )
    result = router.route(QUESTION, context="ctx", reference="B")
    # The first model is drawn, the fallbacks follow the ranking: "good" (ranked last) answers.
    assert sorted(a.model for a in result.attempts) == sorted(BEHAVIOURS)
    assert result.model == "good"
    assert result.accuracy == 1.0
    assert (result.time_to_first_token is not None) == stream
    # The server did receive the key: the redaction is what keeps it out.
    assert farm.calls["echo401"] == 1
    for i, attempt in enumerate(result.attempts):
        assert_clean(f"attempt {i}", repr(attempt))
    errors = {a.model: a.error or "" for a in result.attempts}
    # The server echoed the key it received, so the redaction was exercised.
    assert "Incorrect API key provided: ***" in errors["echo401"]
    assert_clean("repr(result)", repr(result))

    failing = Router(
        models(farm, "echo401", "echo500", "garbage", from_env=from_env),
        scorer=MultipleChoice(),
        stream=stream,
        seed=2,
    )
    with pytest.raises(AllModelsFailedError) as caught:
        failing.route(QUESTION, reference="B")
    assert len(caught.value.attempts) == 3
    for name, text in error_surfaces(caught.value).items():
        assert_clean(f"AllModelsFailedError {name}", text)
    check_logs(debug_logs)
    check_router(router, tmp_path)


def test_async_routes_leak_no_key(
    farm: ModelFarm, debug_logs: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    router = Router(
        models(farm, *BEHAVIOURS), scorer=MultipleChoice(), max_attempts=2, stream=True, seed=3
    )

    async def main() -> list[RouteResult | BaseException]:
        outcomes = await asyncio.gather(
            *(router.aroute(QUESTION, context=f"c{i % 2}", reference="B") for i in range(40)),
            return_exceptions=True,
        )
        await router.aclose()
        return outcomes

    outcomes = asyncio.run(main())
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    results = [o for o in outcomes if isinstance(o, RouteResult)]
    assert results
    assert errors
    assert all(isinstance(e, AllModelsFailedError) for e in errors)
    assert farm.calls["echo401"] > 0
    for error in errors:
        for name, text in error_surfaces(error).items():
            assert_clean(f"AllModelsFailedError {name}", text)
    for result in results:
        assert_clean("repr(result)", repr(result))
    check_logs(debug_logs, http_logger="pickllm.backends")
    check_router(router, tmp_path)


def test_errors_of_restore_and_load_leak_no_key(farm: ModelFarm, tmp_path: Path) -> None:
    router = Router(models(farm, "good"), scorer=MultipleChoice(), seed=4)
    router.route(QUESTION, reference="B")
    path = tmp_path / "router.pickllm"
    router.save(path)
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(SnapshotError, match="truncated") as truncated:
        Router.load(path, models=models(farm, "good"))
    for name, text in error_surfaces(truncated.value).items():
        assert_clean(f"load error {name}", text)
    with pytest.raises(UnknownModelError, match="stranger") as unknown:
        Router.restore(router.snapshot(), models=models(farm, "good", "stranger"))
    for name, text in error_surfaces(unknown.value).items():
        assert_clean(f"restore error {name}", text)


def test_all_models_failed_error_survives_pickling(farm: ModelFarm) -> None:
    router = Router(models(farm, "broken"), scorer=MultipleChoice(), seed=5)
    with pytest.raises(AllModelsFailedError) as caught:
        router.route(QUESTION, reference="B")
    again = pickle.loads(pickle.dumps(caught.value))
    assert str(again) == str(caught.value)
    assert len(again.attempts) == 1
