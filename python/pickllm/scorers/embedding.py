"""Semantic similarity to the reference through any OpenAI-compatible ``/embeddings`` endpoint."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, Literal

import httpx

from pickllm._closing import Closing
from pickllm.backends._limits import CallLimits, LimitExceededError
from pickllm.backends._parsing import ResponseProtocolError, load_json
from pickllm.backends._pools import ClientPools
from pickllm.backends._redact import Secrets, check_headers, excerpt
from pickllm.backends._url import checked_base_url
from pickllm.backends.base import check_unicode
from pickllm.backends.errors import InvalidRequestError
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
    HTTP goes through the backends' layer: one :class:`httpx.Client`, and one
    :class:`httpx.AsyncClient` per event loop (closed with its loop), created on first use and
    reused, so connections are pooled; ``close()`` / ``aclose()`` or a ``with`` block release
    them. Pass ``client`` / ``async_client`` to use your own (they are then not closed here).
    ``api_key``, when given, is sent as a bearer token, never shown by ``repr`` and redacted
    from every error. At most ``max_response_bytes`` of an answer are read.

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
        max_response_bytes: int = 8 * 1024 * 1024,
    ) -> None:
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"base_url {base_url!r} must start with http:// or https://")
        root = checked_base_url(base_url)
        if rescale not in ("clip", "affine"):
            raise ConfigError(f"rescale {rescale!r} must be 'clip' or 'affine'")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise ConfigError(f"timeout {timeout!r} must be a positive number of seconds")
        self._limits = CallLimits.checked(None, max_response_bytes)  # raises if invalid
        self.url = root + "/embeddings"
        self.model = model
        self.rescale: Rescale = rescale
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        check_headers(headers)
        self._secrets = Secrets.of_headers(headers)
        self._pools = ClientPools(
            headers=headers,
            timeout=httpx.Timeout(float(timeout)),
            limits=None,
            http_client=client,
            async_http_client=async_client,
        )

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
        client = self._pools.sync()
        try:
            with client.stream("POST", self.url, **self._request(response, expected)) as answer:
                body = self._bounded(answer.iter_bytes())
        except (httpx.HTTPError, LimitExceededError) as exc:
            raise self._transport_error(exc) from None
        return self._score_from(answer, body)

    async def ascore(self, prompt: str, response: str, reference: str | None = None) -> float:
        """The async twin of :meth:`score`, on a pooled :class:`httpx.AsyncClient`."""
        expected = require_reference(reference, scorer="EmbeddingSimilarity")
        blank = self._blank_score(response, expected)
        if blank is not None:
            return blank
        client = await self._pools.async_()
        request = self._request(response, expected)
        try:
            async with client.stream("POST", self.url, **request) as answer:
                body = await self._abounded(answer.aiter_bytes())
        except (httpx.HTTPError, LimitExceededError) as exc:
            raise self._transport_error(exc) from None
        return self._score_from(answer, body)

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close the sync client if this scorer created it."""
        self._pools.close()

    async def aclose(self) -> None:
        """Close the clients this scorer created (the async one of this event loop)."""
        await self._pools.aclose()

    # -- internals ---------------------------------------------------------------------------

    def _request(self, response: str, reference: str) -> dict[str, Any]:
        try:
            check_unicode(response, "the response")
            check_unicode(reference, "the reference")
        except InvalidRequestError as exc:
            raise EmbeddingError(str(exc)) from None
        return {"json": self._body(response, reference), "headers": self._pools.headers}

    def _bounded(self, chunks: Iterator[bytes]) -> bytes:
        limits = CallLimits(deadline=None, max_bytes=self._limits.max_bytes)
        body = bytearray()
        for chunk in chunks:
            limits.count(chunk)
            body += chunk
        return bytes(body)

    async def _abounded(self, chunks: AsyncIterator[bytes]) -> bytes:
        limits = CallLimits(deadline=None, max_bytes=self._limits.max_bytes)
        body = bytearray()
        async for chunk in chunks:
            limits.count(chunk)
            body += chunk
        return bytes(body)

    @staticmethod
    def _blank_score(response: str, reference: str) -> float | None:
        # Servers disagree on empty input (error, zero vector, garbage), and an empty answer
        # carries no meaning to compare: decide without a call.
        if response.strip() and reference.strip():
            return None
        return float(not response.strip() and not reference.strip())

    def _body(self, response: str, reference: str) -> dict[str, object]:
        return {"model": self.model, "input": [response, reference]}

    def _transport_error(self, exc: Exception) -> EmbeddingError:
        # Detached from the httpx error (some quote header values) and redacted.
        detail = self._secrets.redact(f"{type(exc).__name__}: {exc}")
        return EmbeddingError(f"POST {self.url} failed: {detail}")

    def _score_from(self, answer: httpx.Response, body: bytes) -> float:
        text = body.decode(answer.encoding or "utf-8", errors="replace")
        if answer.status_code != 200:
            detail = excerpt(self._secrets, text[:200])
            raise EmbeddingError(f"POST {self.url} answered HTTP {answer.status_code}: {detail!r}")
        try:
            data = load_json(text, "the body")
        except ResponseProtocolError as exc:
            raise EmbeddingError(
                f"POST {self.url} answered a body that is not JSON ({exc}): "
                f"{excerpt(self._secrets, text[:200])!r}"
            ) from None
        response_vector, reference_vector = self._vectors(data)
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
