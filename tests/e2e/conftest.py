"""Fixtures that start real llama.cpp servers (see tests/servers.py) once per test session.

Each fixture starts its server on first use and stops it when the session ends. Without
llama-cpp-python[server] or the model packages the tests that need them skip, or fail when
PICKLLM_REQUIRE_SERVERS=1. A server that is installed but does not start is always an error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from servers import (
    GEMMA3,
    SMOLLM2,
    SMOLLM2_EMBEDDINGS,
    LlamaServer,
    ServerUnavailableError,
    check_server_packages,
    gemma3_gguf,
    skip_or_fail,
    smollm2_gguf,
    start_server,
)


def _serve(
    tmp_path_factory: pytest.TempPathFactory,
    locate: Callable[[], Path],
    *,
    model: str,
    embedding: bool = False,
    n_ctx: int = 2048,
    chat_format: str | None = None,
) -> Iterator[LlamaServer]:
    try:
        check_server_packages()
        model_path = locate()
    except ServerUnavailableError as exc:
        skip_or_fail(str(exc))
    server = start_server(
        model_path,
        model=model,
        log_dir=tmp_path_factory.mktemp(f"{model}-log"),
        embedding=embedding,
        n_ctx=n_ctx,
        chat_format=chat_format,
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def anyio_backend() -> str:
    """Async end-to-end tests run on asyncio (``pytest.mark.anyio``)."""
    return "asyncio"


@pytest.fixture(scope="session")
def smollm2_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """SmolLM2-135M-Instruct behind /v1/chat/completions, model name ``SMOLLM2``."""
    yield from _serve(tmp_path_factory, smollm2_gguf, model=SMOLLM2)


@pytest.fixture(scope="session")
def gemma3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """Gemma 3 270M (base model, Gemma turn format) behind /v1/chat/completions, ``GEMMA3``."""
    yield from _serve(tmp_path_factory, gemma3_gguf, model=GEMMA3, chat_format="gemma")


@pytest.fixture(scope="session")
def embedding_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """SmolLM2-135M with mean pooling behind /v1/embeddings, model ``SMOLLM2_EMBEDDINGS``."""
    yield from _serve(
        tmp_path_factory, smollm2_gguf, model=SMOLLM2_EMBEDDINGS, embedding=True, n_ctx=512
    )


@pytest.fixture(scope="session")
def smollm2_url(smollm2_server: LlamaServer) -> str:
    """Base URL of the SmolLM2 chat server, e.g. ``http://127.0.0.1:PORT/v1``."""
    return smollm2_server.base_url


@pytest.fixture(scope="session")
def gemma3_url(gemma3_server: LlamaServer) -> str:
    """Base URL of the Gemma 3 chat server, e.g. ``http://127.0.0.1:PORT/v1``."""
    return gemma3_server.base_url


@pytest.fixture(scope="session")
def embedding_url(embedding_server: LlamaServer) -> str:
    """Base URL of the embeddings server, e.g. ``http://127.0.0.1:PORT/v1``."""
    return embedding_server.base_url
