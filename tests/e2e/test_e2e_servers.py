"""Smoke tests of the real llama.cpp servers: they answer a real RouterBench question.

These talk plain HTTP (httpx) so that they check the servers themselves, not pickllm's backends.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from pickllm.scorers import MultipleChoice
from servers import SEED, LlamaServer, arc_questions


@pytest.mark.parametrize("server_fixture", ["smollm2_server", "gemma3_server"])
def test_chat_server_answers_a_real_question_with_real_usage(
    server_fixture: str, request: pytest.FixtureRequest, shared_data: Path
) -> None:
    server: LlamaServer = request.getfixturevalue(server_fixture)
    ((question, answer),) = arc_questions(shared_data, 1)
    assert "A)" in question
    assert answer in "ABCD"
    with httpx.Client(base_url=server.base_url, timeout=120) as client:
        reply = client.post(
            "/chat/completions",
            json={
                "model": server.model,
                "messages": [{"role": "user", "content": question}],
                "max_tokens": 8,
                "temperature": 0,
                "seed": SEED,
            },
        )
        assert reply.status_code == 200, reply.text
        body = reply.json()
        # The question alone, tokenized by the same server: the chat template adds tokens to it.
        tokens = client.post(
            server.base_url.removesuffix("/v1") + "/extras/tokenize",
            json={"input": question, "model": server.model},
        ).json()["tokens"]
    usage = body["usage"]
    assert usage["prompt_tokens"] > len(tokens) > 0
    assert 0 <= usage["completion_tokens"] <= 8
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert body["model"] == server.model
    finish = body["choices"][0]["finish_reason"]
    assert finish in ("stop", "length")
    if finish == "length":
        assert usage["completion_tokens"] == 8
    text = body["choices"][0]["message"]["content"]
    assert isinstance(text, str)
    assert MultipleChoice().score(question, text, answer) in (0.0, 1.0)


def test_embedding_server_pools_one_vector_per_input(embedding_server: LlamaServer) -> None:
    with httpx.Client(base_url=embedding_server.base_url, timeout=60) as client:
        reply = client.post(
            "/embeddings",
            json={"model": embedding_server.model, "input": ["hello world", "goodbye"]},
        )
    assert reply.status_code == 200, reply.text
    data = reply.json()["data"]
    assert [item["index"] for item in data] == [0, 1]
    first, second = (item["embedding"] for item in data)
    # SmolLM2-135M's hidden size: one pooled vector, not one vector per token
    assert len(first) == len(second) == 576
    assert all(isinstance(x, float) for x in first)
    assert first != second
