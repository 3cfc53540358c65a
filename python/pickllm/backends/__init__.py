"""Backends: how pickllm calls a model over HTTP, sync or async, streamed or not.

>>> from pickllm.backends import OpenAICompatible
>>> OpenAICompatible(base_url="http://127.0.0.1:8080/v1", api_key="sk-local")
OpenAICompatible(base_url='http://127.0.0.1:8080/v1', api_key='***')
"""

from pickllm.backends.anthropic import Anthropic
from pickllm.backends.base import Backend, Completer, Completion, Message
from pickllm.backends.errors import (
    BackendConnectionError,
    BackendError,
    BackendStatusError,
    BackendTimeoutError,
    ClientError,
    InvalidRequestError,
    MalformedResponseError,
    RateLimitError,
    ServerError,
    parse_retry_after,
)
from pickllm.backends.openai import OpenAICompatible
from pickllm.backends.usage import Usage, estimate_tokens, estimate_usage

__all__ = [
    "Anthropic",
    "Backend",
    "BackendConnectionError",
    "BackendError",
    "BackendStatusError",
    "BackendTimeoutError",
    "ClientError",
    "Completer",
    "Completion",
    "InvalidRequestError",
    "MalformedResponseError",
    "Message",
    "OpenAICompatible",
    "RateLimitError",
    "ServerError",
    "Usage",
    "estimate_tokens",
    "estimate_usage",
    "parse_retry_after",
]
