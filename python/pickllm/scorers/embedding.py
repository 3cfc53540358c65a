"""Semantic similarity to the reference through any OpenAI-compatible ``/embeddings`` endpoint."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import Literal

import httpx

from pickllm._closing import Closing
from pickllm.errors import ConfigError
from pickllm.scorers.base import require_reference
from pickllm.scorers.errors import EmbeddingError

__all__ = ["EmbeddingSimilarity", "cosine_similarity"]

Rescale = Literal["clip", "affine"]


def cosine_similarity(a: Sequence[float], b: Sequence[float]) -> float:
    """The cosine of the angle between two vectors, in [-1, 1].

    >>> cosine_similarity([1.0, 0.0], [2.0, 0.0])
    1.0
    >>> cosine_similarity([1.0, 0.0], [0.0, 3.0])
    0.0
    """
    if len(a) != len(b):
        raise EmbeddingError(f"embeddings differ in length: {len(a)} and {len(b)}")
    norm_a = math.sqrt(math.fsum(x * x for x in a))
    norm_b = math.sqrt(math.fsum(y * y for y in b))
    if norm_a == 0.0 or norm_b == 0.0:
        raise EmbeddingError("an embedding is the zero vector: its cosine similarity is undefined")
    dot = math.fsum(x * y for x, y in zip(a, b, strict=True))
    # Rounding can carry the quotient a hair past +-1.
    return max(-1.0, min(1.0, dot / (norm_a * norm_b)))


class EmbeddingSimilarity(Closing):
    """Cosine similarity between the embeddings of the response and of the reference.

    One POST to ``{base_url}/embeddings`` per score embeds both texts (``{"model": model,
    "input": [response, reference]}``), so it works with OpenAI, vLLM, llama.cpp, Ollama and
    others. The cosine ``c`` in [-1, 1] is mapped to a score in [0, 1] by ``rescale``:

    * ``"clip"`` (default): ``max(0, c)``. Unrelated texts land near 0 rather than near 0.5, so
      the score keeps its meaning as an accuracy; text embeddings are rarely negatively
      correlated, and when they are the answer is no better than an unrelated one.
    * ``"affine"``: ``(c + 1) / 2``, which keeps the full order of cosines.

    A blank response (or reference) is not sent: it scores 1.0 if both are blank, else 0.0.
    One :class:`httpx.Client` and one :class:`httpx.AsyncClient` are created on first use and
    reused, so connections are pooled; ``close()`` / ``aclose()`` or a ``with`` block release
    them. Pass ``client`` / ``async_client`` to use your own (they are then not closed here).
    ``api_key``, when given, is sent as a bearer token and never shown by ``repr``.

    A failed call raises :class:`~pickllm.scorers.EmbeddingError` rather than scoring 0.

    >>> import httpx
    >>> def fake_server(request: httpx.Request) -> httpx.Response:
    ...     vectors = [[1.0, 1.0], [1.0, 0.0]]  # 45 degrees apart
    ...     return httpx.Response(200, json={"data": [
    ...         {"index": i, "embedding": v} for i, v in enumerate(vectors)]})
    >>> client = httpx.Client(transport=httpx.MockTransport(fake_server))
    >>> scorer = EmbeddingSimilarity("http://127.0.0.1:8080/v1", model="m", client=client)
    >>> round(scorer.score("q", "some answer", "the reference"), 4)
    0.7071
    """

    def __init__(
        self,
        base_url: str,
        *,
        model: str,
        api_key: str | None = None,
        timeout: float = 30.0,
        rescale: Rescale = "clip",
        client: httpx.Client | None = None,
        async_client: httpx.AsyncClient | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"base_url {base_url!r} must start with http:// or https://")
        if rescale not in ("clip", "affine"):
            raise ConfigError(f"rescale {rescale!r} must be 'clip' or 'affine'")
        if not timeout > 0:
            raise ConfigError(f"timeout {timeout!r} must be a positive number of seconds")
        self.url = base_url.rstrip("/") + "/embeddings"
        self.model = model
        self.rescale: Rescale = rescale
        self._timeout = timeout
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = client
        self._owns_client = client is None
        self._async_client = async_client
        self._owns_async_client = async_client is None
        self._async_loop: asyncio.AbstractEventLoop | None = None  # where _async_client lives

    def __repr__(self) -> str:
        return (
            f"EmbeddingSimilarity(url={self.url!r}, model={self.model!r}, rescale={self.rescale!r})"
        )

    # -- scoring -----------------------------------------------------------------------------

    def score(self, prompt: str, response: str, reference: str | None = None) -> float:
        """Embed response and reference (one HTTP call) and map their cosine to [0, 1]."""
        expected = require_reference(reference, scorer="EmbeddingSimilarity")
        blank = self._blank_score(response, expected)
        if blank is not None:
            return blank
        if self._client is None:
            self._client = httpx.Client(timeout=self._timeout)
        try:
            answer = self._client.post(
                self.url, json=self._body(response, expected), headers=self._headers
            )
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        return self._score_from(answer)

    async def ascore(self, prompt: str, response: str, reference: str | None = None) -> float:
        """The async twin of :meth:`score`, on a pooled :class:`httpx.AsyncClient`."""
        expected = require_reference(reference, scorer="EmbeddingSimilarity")
        blank = self._blank_score(response, expected)
        if blank is not None:
            return blank
        client = self._async_client_for_this_loop()
        try:
            answer = await client.post(
                self.url, json=self._body(response, expected), headers=self._headers
            )
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        return self._score_from(answer)

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close the sync client if this scorer created it."""
        if self._client is not None and self._owns_client:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        """Close both clients if this scorer created them."""
        if self._async_client is not None and self._owns_async_client:
            await self._async_client.aclose()
            self._async_client = None
        self.close()

    # -- internals ---------------------------------------------------------------------------

    def _async_client_for_this_loop(self) -> httpx.AsyncClient:
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None  # another async library (trio): one client for the scorer's lifetime
        if self._async_client is None or (self._owns_async_client and self._async_loop is not loop):
            # A pooled connection belongs to the loop that opened it: after asyncio.run() has
            # finished one loop, reusing its client from the next loop fails. Start afresh.
            self._async_client = httpx.AsyncClient(timeout=self._timeout)
            self._async_loop = loop
        return self._async_client

    @staticmethod
    def _blank_score(response: str, reference: str) -> float | None:
        # Servers disagree on empty input (error, zero vector, garbage), and an empty answer
        # carries no meaning to compare: decide without a call.
        if response.strip() and reference.strip():
            return None
        return float(not response.strip() and not reference.strip())

    def _body(self, response: str, reference: str) -> dict[str, object]:
        return {"model": self.model, "input": [response, reference]}

    def _transport_error(self, exc: httpx.HTTPError) -> EmbeddingError:
        return EmbeddingError(f"POST {self.url} failed: {type(exc).__name__}: {exc}")

    def _score_from(self, answer: httpx.Response) -> float:
        if answer.status_code != 200:
            raise EmbeddingError(
                f"POST {self.url} answered HTTP {answer.status_code}: {answer.text[:200]!r}"
            )
        try:
            body = answer.json()
        except ValueError as exc:
            raise EmbeddingError(
                f"POST {self.url} answered a body that is not JSON: {answer.text[:200]!r}"
            ) from exc
        response_vector, reference_vector = self._vectors(body)
        cosine = cosine_similarity(response_vector, reference_vector)
        if self.rescale == "clip":
            return max(0.0, cosine)
        return min(1.0, max(0.0, (cosine + 1.0) / 2.0))

    def _vectors(self, body: object) -> tuple[list[float], list[float]]:
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list) or len(data) != 2:
            raise EmbeddingError(
                f"POST {self.url}: expected a JSON object whose 'data' holds 2 embeddings, "
                f"got {str(body)[:200]!r}"
            )
        # The API numbers its items; order by that index rather than trusting list order.
        items = sorted(data, key=lambda item: item.get("index", 0) if isinstance(item, dict) else 0)
        vectors: list[list[float]] = []
        for item in items:
            vector = item.get("embedding") if isinstance(item, dict) else None
            if (
                not isinstance(vector, list)
                or not vector
                or not all(
                    isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
                    for x in vector
                )
            ):
                raise EmbeddingError(
                    f"POST {self.url}: an embedding is not a non-empty list of finite numbers "
                    "(a server without pooling returns one vector per token; start it with a "
                    f"pooling type): {str(item)[:200]!r}"
                )
            vectors.append([float(x) for x in vector])
        return vectors[0], vectors[1]
