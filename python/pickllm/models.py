"""Model specs: a name for the router, the backend that serves it, and what its tokens cost.

Prices are USD per million tokens, as providers publish them; :meth:`Model.cost` prices one call
from its :class:`Usage`. When a server reported no token counts the backend estimated them
(``usage.estimated``), and the cost is an estimate too.

>>> from pickllm.backends import OpenAICompatible
>>> local = OpenAICompatible(base_url="http://127.0.0.1:8080/v1", api_key_env=None)
>>> gpt = Model("gpt-4o", backend=local, input_price=2.50, output_price=10.00)
>>> gpt.cost(Usage(input_tokens=1_000, output_tokens=200))
0.0045
>>> gpt.model_id  # the name sent to the provider defaults to the model's name
'gpt-4o'
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from pickllm.backends.base import Backend, Completion, Message
from pickllm.backends.usage import Usage, estimate_tokens, estimate_usage
from pickllm.config import describe_validation_error
from pickllm.errors import ConfigError

__all__ = ["Model", "Usage", "estimate_tokens", "estimate_usage"]

_PER_MILLION = 1_000_000.0
_BACKEND_METHODS = ("complete", "acomplete", "close", "aclose")


class Model(BaseModel):
    """One model of a router's pool.

    Args:
        name: the name the router knows the model by (unique in a pool).
        backend: what serves it: :class:`~pickllm.backends.OpenAICompatible`,
            :class:`~pickllm.backends.Anthropic` or any object with the
            :class:`~pickllm.backends.Backend` methods.
        input_price: USD per million input (prompt) tokens, finite and >= 0.
        output_price: USD per million output (generated) tokens, finite and >= 0.
        model_id: the provider's name for the model, sent in requests; defaults to ``name``
            (so after construction it is always a string).
        max_tokens: the ``max_tokens`` of calls to this model; None leaves it to the backend.

    Specs are immutable and validated once; a bad value raises :class:`~pickllm.ConfigError`
    (a ``ValueError``) naming the field.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    name: str = Field(min_length=1)
    backend: Backend
    input_price: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    output_price: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    model_id: str | None = Field(default=None, min_length=1)
    max_tokens: int | None = Field(default=None, gt=0)

    if TYPE_CHECKING:
        # The signature type checkers see: the name may be positional, Model("gpt-4o", ...).
        def __init__(
            self,
            name: str,
            *,
            backend: Backend,
            input_price: float = 0.0,
            output_price: float = 0.0,
            model_id: str | None = None,
            max_tokens: int | None = None,
        ) -> None: ...

    else:

        def __init__(self, *args: Any, **data: Any) -> None:
            # pydantic's generated __init__ is keyword-only. Keep **data open (rather than
            # listing fields) so an unknown field still reaches pydantic's extra="forbid" check,
            # which model_validate also routes through this method.
            if len(args) > 1:
                raise TypeError(
                    f"Model() takes the name as its only positional argument, got {len(args)}"
                )
            if args:
                if "name" in data:
                    raise TypeError("Model() got the name both positionally and as name=")
                data["name"] = args[0]
            try:
                super().__init__(**data)
            except ValidationError as error:
                # One error hierarchy: a bad spec is a ConfigError (a ValueError) naming fields.
                raise ConfigError(describe_validation_error("Model", error)) from None

    @model_validator(mode="before")
    @classmethod
    def _default_model_id(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("model_id") is None and "name" in data:
            data = {**data, "model_id": data["name"]}
        return data

    @field_validator("backend", mode="plain")
    @classmethod
    def _check_backend(cls, value: object) -> Backend:
        missing = [m for m in _BACKEND_METHODS if not callable(getattr(value, m, None))]
        if missing:
            raise ValueError(
                f"backend must implement pickllm.backends.Backend; {type(value).__name__} "
                f"lacks {', '.join(missing)}"
            )
        return value  # type: ignore[return-value]  # checked structurally just above

    @field_validator("input_price", "output_price", "max_tokens", mode="before")
    @classmethod
    def _reject_bool(cls, value: object) -> object:
        # pydantic would read True as 1.0: a price or token limit given as a bool is a mistake.
        if isinstance(value, bool):
            raise ValueError(f"must be a number, not a bool ({value!r})")
        return value

    @property
    def provider_model(self) -> str:
        """The model name sent to the provider (``model_id``, which defaults to ``name``)."""
        return self.model_id or self.name

    def cost(self, usage: Usage) -> float:
        """USD cost of a call with this ``usage``: tokens times price per million.

        >>> from pickllm.backends import OpenAICompatible
        >>> m = Model("m", backend=OpenAICompatible("http://127.0.0.1:1/v1", api_key_env=None),
        ...           input_price=0.15, output_price=0.60)
        >>> round(m.cost(Usage(input_tokens=2_000, output_tokens=500)), 8)
        0.0006
        """
        return (
            usage.input_tokens * self.input_price + usage.output_tokens * self.output_price
        ) / _PER_MILLION

    def complete(
        self,
        messages: Sequence[Message],
        *,
        temperature: float | None = None,
        stream: bool = False,
        deadline: float | None = None,
        max_response_bytes: int | None = None,
    ) -> Completion:
        """Call this model through its backend with its ``model_id`` and ``max_tokens``; the
        limits go to backends that take them (see :mod:`pickllm.backends.base`)."""
        limits = _limits(self.backend.complete, deadline, max_response_bytes)
        return self.backend.complete(
            messages,
            model=self.provider_model,
            max_tokens=self.max_tokens,
            temperature=temperature,
            stream=stream,
            **limits,
        )

    def acomplete(
        self,
        messages: Sequence[Message],
        *,
        temperature: float | None = None,
        stream: bool = False,
        deadline: float | None = None,
        max_response_bytes: int | None = None,
    ) -> Awaitable[Completion]:
        """The async twin of :meth:`complete`: await what it returns, the backend's call
        itself (a coroutine of our own here would add a frame that every resumption of the
        call passes through)."""
        acomplete = self.backend.acomplete
        limits = _limits(acomplete, deadline, max_response_bytes)
        return acomplete(
            messages,
            model=self.provider_model,
            max_tokens=self.max_tokens,
            temperature=temperature,
            stream=stream,
            **limits,
        )


def _limits(method: Any, deadline: float | None, max_response_bytes: int | None) -> Any:
    """The limit keywords ``method`` names (user-written backends may name none)."""
    takes = limits_taken(method)
    limits = {"deadline": deadline, "max_response_bytes": max_response_bytes}
    if len(takes) == len(limits):  # pickllm's own backends: all of them
        return limits
    return {k: v for k, v in limits.items() if k in takes}


def limits_taken(method: Any) -> frozenset[str]:
    """Which of ``deadline`` and ``max_response_bytes`` a backend method names."""
    function = getattr(method, "__func__", method)
    try:
        return _takes_limits(function)
    except TypeError:  # an unhashable callable object: inspect it every time
        return _takes_limits.__wrapped__(function)


@functools.lru_cache(maxsize=256)
def _takes_limits(function: Any) -> frozenset[str]:
    """Which of the limit keywords ``function`` names as parameters. ``**kwargs`` does not
    count: a wrapper often forwards them to a method that takes none of them."""
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return frozenset()
    return frozenset(parameters.keys() & {"deadline", "max_response_bytes"})
