"""pickllm.models.Model: validation, prices, and calls through its backend."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from pickllm.backends import Completion, Message, OpenAICompatible
from pickllm.errors import ConfigError
from pickllm.models import Model, Usage
from recording import Call, RecordingBackend

MESSAGES: list[Message] = [{"role": "user", "content": "hi"}]


class FakeBackend(RecordingBackend):
    """A structural Backend (no base class of pickllm's), recording its calls."""

    def answer(self, call: Call) -> Completion:
        return Completion(text="ok", model=call.model, usage=Usage(3, 1), latency=0.01)


def test_defaults_and_positional_name() -> None:
    backend = FakeBackend()
    model = Model("gpt-4o", backend=backend)
    assert model.name == "gpt-4o"
    assert model.backend is backend
    assert (model.input_price, model.output_price) == (0.0, 0.0)
    assert model.model_id == "gpt-4o"
    assert model.provider_model == "gpt-4o"
    assert model.max_tokens is None
    assert Model(name="x", backend=backend).name == "x"


def test_cost_uses_prices_per_million_tokens() -> None:
    model = Model("gpt-4o", backend=FakeBackend(), input_price=2.5, output_price=10.0)
    assert model.cost(Usage(1_000_000, 0)) == pytest.approx(2.5)
    assert model.cost(Usage(0, 1_000_000)) == pytest.approx(10.0)
    assert model.cost(Usage(1_000, 200)) == pytest.approx(0.0045)
    assert model.cost(Usage(0, 0)) == 0.0


@given(
    st.floats(0, 1000, allow_nan=False),
    st.floats(0, 1000, allow_nan=False),
    st.integers(0, 10**7),
    st.integers(0, 10**7),
)
def test_cost_is_linear_and_non_negative(
    input_price: float, output_price: float, tokens_in: int, tokens_out: int
) -> None:
    model = Model("m", backend=FakeBackend(), input_price=input_price, output_price=output_price)
    cost = model.cost(Usage(tokens_in, tokens_out))
    assert cost >= 0
    assert math.isfinite(cost)
    expected = (tokens_in * input_price + tokens_out * output_price) / 1e6
    assert cost == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert model.cost(Usage(tokens_in, tokens_out, estimated=True)) == cost


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"input_price": -0.01}, "input_price"),
        ({"output_price": math.inf}, "output_price"),
        ({"input_price": math.nan}, "input_price"),
        ({"input_price": True}, "input_price"),
        ({"output_price": "cheap"}, "output_price"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": False}, "max_tokens"),
        ({"model_id": ""}, "model_id"),
    ],
)
def test_invalid_values_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        Model("m", backend=FakeBackend(), **kwargs)
    assert str(info.value).startswith(f"Model.{field}:")
    assert isinstance(info.value, ValueError)


def test_empty_name_and_unknown_fields_are_refused() -> None:
    with pytest.raises(ConfigError, match="name"):
        Model("", backend=FakeBackend())
    with pytest.raises((ConfigError, ValidationError), match=r"[Ee]xtra"):
        Model.model_validate({"name": "m", "backend": FakeBackend(), "price": 1.0})


def test_backend_must_implement_the_protocol() -> None:
    class Half:
        def complete(self) -> None:
            pass

    with pytest.raises(ConfigError, match="Half lacks acomplete, close, aclose"):
        Model("m", backend=Half())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="str lacks complete"):
        Model("m", backend="http://127.0.0.1:8080")  # type: ignore[arg-type]


def test_model_is_frozen_and_hashable() -> None:
    model = Model("m", backend=FakeBackend(), input_price=1.0)
    with pytest.raises(ValidationError, match="frozen"):
        model.input_price = 2.0
    assert hash(model) == hash(model)
    assert model.model_copy(update={"input_price": 3.0}).input_price == 3.0


def test_repr_shows_the_backend_without_its_key() -> None:
    backend = OpenAICompatible("http://127.0.0.1:1/v1", api_key="sk-SECRET-key-123")
    model = Model("m", backend=backend)
    assert "SECRET" not in repr(model)
    assert "OpenAICompatible(base_url='http://127.0.0.1:1/v1', api_key='***')" in repr(model)


def test_complete_passes_model_id_and_max_tokens() -> None:
    backend = FakeBackend()
    model = Model("fast", backend=backend, model_id="llama-3.1-8b-instant", max_tokens=32)
    result = model.complete(MESSAGES, temperature=0.1, stream=True)
    assert result.model == "llama-3.1-8b-instant"
    assert backend.calls == [Call(MESSAGES, "llama-3.1-8b-instant", 32, 0.1, True)]


@pytest.mark.anyio
async def test_acomplete_through_a_real_server(server: Any) -> None:
    server.queue(
        server.json(
            {
                "id": "chatcmpl-9",
                "object": "chat.completion",
                "model": "smollm2-135m",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "B"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 120, "completion_tokens": 2, "total_tokens": 122},
            }
        )
    )
    async with OpenAICompatible(server.url + "/v1", api_key_env=None) as backend:
        model = Model(
            "small",
            backend=backend,
            model_id="smollm2-135m",
            max_tokens=4,
            input_price=0.05,
            output_price=0.10,
        )
        result = await model.acomplete(MESSAGES)
    assert server.last.json["model"] == "smollm2-135m"
    assert server.last.json["max_tokens"] == 4
    assert result.text == "B"
    assert model.cost(result.usage) == pytest.approx((120 * 0.05 + 2 * 0.10) / 1e6)


def test_positional_arguments_beyond_the_name_are_refused() -> None:
    with pytest.raises(TypeError, match="only positional argument"):
        Model("m", FakeBackend())  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="both positionally and as name="):
        Model("m", name="n", backend=FakeBackend())  # type: ignore[misc]
