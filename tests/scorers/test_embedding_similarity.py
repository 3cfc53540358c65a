"""EmbeddingSimilarity against httpx mock transports (the real server is in tests/e2e)."""

from __future__ import annotations

import asyncio
import json
import math
import socket
from collections.abc import Callable

import httpx
import pytest

from pickllm.errors import ConfigError
from pickllm.scorers import (
    EmbeddingError,
    EmbeddingSimilarity,
    MissingReferenceError,
    cosine_similarity,
)

BASE = "http://127.0.0.1:9/v1"
Handler = Callable[[httpx.Request], httpx.Response]


def vectors_server(
    vectors: list[object], seen: list[httpx.Request] | None = None, *, status: int = 200
) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
        return httpx.Response(status, json={"object": "list", "data": data, "model": "m"})

    return handle


def scorer_for(handler: Handler, **kwargs: object) -> EmbeddingSimilarity:
    client = httpx.Client(transport=httpx.MockTransport(handler))
    return EmbeddingSimilarity(BASE, model="emb", client=client, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([1.0, 0.0], [1.0, 0.0], 1.0),
        ([1.0, 0.0], [5.0, 0.0], 1.0),
        ([1.0, 0.0], [0.0, 1.0], 0.0),
        ([1.0, 0.0], [-1.0, 0.0], -1.0),
        ([1.0, 1.0], [1.0, 0.0], math.sqrt(0.5)),
        ([3, 4], [4, 3], 24 / 25),
    ],
)
def test_cosine_similarity(a: list[float], b: list[float], expected: float) -> None:
    assert cosine_similarity(a, b) == pytest.approx(expected)


def test_cosine_similarity_rejects_zero_vectors_and_length_mismatch() -> None:
    with pytest.raises(EmbeddingError, match="zero vector"):
        cosine_similarity([0.0, 0.0], [1.0, 0.0])
    with pytest.raises(EmbeddingError, match="differ in length"):
        cosine_similarity([1.0], [1.0, 0.0])


@pytest.mark.parametrize(
    ("vectors", "rescale", "expected"),
    [
        ([[1.0, 0.0], [1.0, 0.0]], "clip", 1.0),
        ([[1.0, 1.0], [1.0, 0.0]], "clip", math.sqrt(0.5)),
        ([[1.0, 0.0], [0.0, 1.0]], "clip", 0.0),
        ([[1.0, 0.0], [-1.0, 0.0]], "clip", 0.0),  # negative cosines clip to 0
        ([[1.0, 0.0], [-1.0, 0.0]], "affine", 0.0),
        ([[1.0, 0.0], [0.0, 1.0]], "affine", 0.5),
        ([[1.0, 0.0], [1.0, 0.0]], "affine", 1.0),
    ],
)
def test_cosine_is_mapped_to_unit_interval(
    vectors: list[object], rescale: str, expected: float
) -> None:
    scorer = scorer_for(vectors_server(vectors), rescale=rescale)
    assert scorer.score("q", "response", "reference") == pytest.approx(expected)


def test_request_shape_and_authorization() -> None:
    seen: list[httpx.Request] = []
    scorer = scorer_for(vectors_server([[1.0], [1.0]], seen), api_key="sk-secret-123")
    scorer.score("the prompt", "the response", "the reference")
    (request,) = seen
    assert request.method == "POST"
    assert str(request.url) == "http://127.0.0.1:9/v1/embeddings"
    assert json.loads(request.content) == {
        "model": "emb",
        "input": ["the response", "the reference"],
    }
    assert request.headers["authorization"] == "Bearer sk-secret-123"
    assert "sk-secret" not in repr(scorer)


def test_no_authorization_header_without_key() -> None:
    seen: list[httpx.Request] = []
    scorer_for(vectors_server([[1.0], [1.0]], seen)).score("q", "r", "ref")
    assert "authorization" not in seen[0].headers


def test_items_are_ordered_by_index_not_list_position() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        data = [{"index": 1, "embedding": [0.0, 1.0]}, {"index": 0, "embedding": [1.0, 1.0]}]
        return httpx.Response(200, json={"data": data})

    # response [1, 1] vs reference [0, 1]: cos 45 degrees, whatever order the list had
    assert scorer_for(handle).score("q", "r", "ref") == pytest.approx(math.sqrt(0.5))


def test_one_client_is_created_lazily_and_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[httpx.Request] = []
    created: list[httpx.Client] = []
    real_client = httpx.Client

    def make_client(**kwargs: object) -> httpx.Client:
        client = real_client(transport=httpx.MockTransport(vectors_server([[1.0], [1.0]], seen)))
        created.append(client)
        return client

    monkeypatch.setattr(httpx, "Client", make_client)
    scorer = EmbeddingSimilarity(BASE, model="emb")
    assert created == []
    for _ in range(3):
        scorer.score("q", "r", "ref")
    assert len(created) == 1
    assert len(seen) == 3
    scorer.close()
    assert created[0].is_closed


@pytest.mark.parametrize(
    ("response", "reference", "expected"),
    [("", "ref", 0.0), ("  ", "ref", 0.0), ("r", " ", 0.0), ("", "", 1.0)],
)
def test_blank_texts_are_scored_without_a_call(
    response: str, reference: str, expected: float
) -> None:
    seen: list[httpx.Request] = []
    scorer = scorer_for(vectors_server([[1.0], [1.0]], seen))
    assert scorer.score("q", response, reference) == expected
    assert seen == []


def test_reference_is_required() -> None:
    with pytest.raises(MissingReferenceError, match="EmbeddingSimilarity"):
        scorer_for(vectors_server([[1.0], [1.0]])).score("q", "r")


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        (vectors_server([[1.0], [1.0]], status=500), "HTTP 500"),
        (vectors_server([[1.0], [1.0]], status=401), "HTTP 401"),
        (lambda r: httpx.Response(200, text="<html>oops</html>"), "not JSON"),
        (lambda r: httpx.Response(200, json={"data": []}), "holds 2 embeddings"),
        (lambda r: httpx.Response(200, json=[1, 2]), "holds 2 embeddings"),
        (vectors_server([[1.0]]), "holds 2 embeddings"),
        (vectors_server([[[1.0], [2.0]], [[1.0]]]), "one vector per token"),  # no pooling
        (vectors_server([[1.0, "x"], [1.0, 0.0]]), "finite numbers"),
        (vectors_server([[], []]), "finite numbers"),
        (vectors_server([[1.0, 0.0], [1.0]]), "differ in length"),
        (vectors_server([[0.0, 0.0], [1.0, 0.0]]), "zero vector"),
    ],
)
def test_malformed_answers_raise_embedding_error(handler: Handler, message: str) -> None:
    with pytest.raises(EmbeddingError, match=message):
        scorer_for(handler).score("q", "response", "reference")


def test_infinite_components_are_rejected() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        body = '{"data": [{"index": 0, "embedding": [1e999]}, {"index": 1, "embedding": [1.0]}]}'
        return httpx.Response(200, text=body)

    with pytest.raises(EmbeddingError, match="finite numbers"):
        scorer_for(handle).score("q", "r", "ref")


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_connection_refused_is_an_embedding_error_without_the_key() -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    with (
        EmbeddingSimilarity(url, model="m", api_key="sk-secret-123", timeout=5) as scorer,
        pytest.raises(EmbeddingError, match="ConnectError") as caught,
    ):
        scorer.score("q", "r", "ref")
    assert "sk-secret" not in str(caught.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"base_url": "127.0.0.1:8080"}, "base_url"),
        ({"rescale": "sigmoid"}, "rescale"),
        ({"timeout": 0}, "timeout"),
    ],
)
def test_invalid_configuration(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"base_url": BASE, "model": "m", **kwargs}
    with pytest.raises(ConfigError, match=message):
        EmbeddingSimilarity(**arguments)  # type: ignore[arg-type]


def test_trailing_slash_of_base_url_is_ignored() -> None:
    assert EmbeddingSimilarity(BASE + "/", model="m").url == BASE + "/embeddings"


# -- async -----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_ascore_matches_score() -> None:
    handler = vectors_server([[1.0, 1.0], [1.0, 0.0]])
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    async with EmbeddingSimilarity(BASE, model="m", async_client=client) as scorer:
        assert await scorer.ascore("q", "r", "ref") == pytest.approx(math.sqrt(0.5))
    assert not client.is_closed  # a client passed in belongs to the caller
    await client.aclose()


@pytest.mark.anyio
async def test_ascore_errors_like_score() -> None:
    handler = vectors_server([[1.0], [1.0]], status=503)
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    scorer = EmbeddingSimilarity(BASE, model="m", async_client=client)
    with pytest.raises(EmbeddingError, match="HTTP 503"):
        await scorer.ascore("q", "r", "ref")
    await client.aclose()


@pytest.mark.anyio
async def test_ascore_connection_refused() -> None:
    scorer = EmbeddingSimilarity(f"http://127.0.0.1:{closed_port()}/v1", model="m", timeout=5)
    with pytest.raises(EmbeddingError, match="ConnectError"):
        await scorer.ascore("q", "r", "ref")
    await scorer.aclose()


def test_own_async_client_is_renewed_for_each_event_loop() -> None:
    scorer = EmbeddingSimilarity(BASE, model="m")

    async def client_in_this_loop() -> httpx.AsyncClient:
        return await scorer._pools.async_()

    first = asyncio.run(client_in_this_loop())
    second = asyncio.run(client_in_this_loop())
    assert first is not second  # a client from a finished loop is not reused

    async def same_loop_twice() -> bool:
        return await scorer._pools.async_() is await scorer._pools.async_()

    assert asyncio.run(same_loop_twice())
    asyncio.run(scorer.aclose())


def test_hostile_embedding_answers_and_texts_are_clear_errors() -> None:
    def deep(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"[" * 100_000)

    def huge(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b" " * 2_000_000)

    def echo_key(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, text=f"bad key {request.headers['authorization']}")

    with pytest.raises(EmbeddingError, match="nested too deeply"):
        scorer_for(deep).score("q", "r", "ref")
    with pytest.raises(EmbeddingError, match="max_response_bytes=1000000"):
        scorer_for(huge, max_response_bytes=1_000_000).score("q", "r", "ref")
    with pytest.raises(EmbeddingError) as caught:
        scorer_for(echo_key, api_key="sk-secret-embed").score("q", "r", "ref")
    assert "sk-secret-embed" not in str(caught.value)
    with pytest.raises(EmbeddingError, match="lone surrogate"):
        scorer_for(deep).score("q", "bad \ud800", "ref")
