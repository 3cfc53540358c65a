"""The exceptions pickllm raises.

Every error pickllm raises derives from :class:`PickLLMError`. Errors caused by bad input (a
hyperparameter out of range, a NaN reward, an unknown model, a reused decision, a corrupted
snapshot) are also :class:`ValueError`, so ``except ValueError`` keeps working for callers that do
not know pickllm. Each message names the offending field and value. A rejected call never changes
the router's learned state.
"""

from __future__ import annotations

__all__ = [
    "ArgumentTypeError",
    "ConfigError",
    "DecisionError",
    "EncodingError",
    "FeedbackError",
    "NoEligibleModelError",
    "PickLLMError",
    "PromptError",
    "SnapshotError",
    "UnknownModelError",
]


class PickLLMError(Exception):
    """Base class of every error pickllm raises."""


class ConfigError(PickLLMError, ValueError):
    """A configuration value (hyperparameter, reward weight, model list) is invalid."""


class UnknownModelError(PickLLMError, ValueError):
    """A model name that is not in the router's pool."""


class NoEligibleModelError(PickLLMError, ValueError):
    """The models allowed for one selection leave nothing to choose from."""


class FeedbackError(PickLLMError, ValueError):
    """An invalid observation: NaN, infinity, negative cost or latency, accuracy not in [0, 1]."""


class DecisionError(PickLLMError, ValueError):
    """A decision that is unknown, already given feedback, expired, or does not match the router."""


class EncodingError(PickLLMError, ValueError):
    """A context or model name that UTF-8 cannot encode: a string with a lone surrogate."""


class SnapshotError(PickLLMError, ValueError):
    """A snapshot that is truncated, altered, of a newer format or otherwise invalid."""


class ArgumentTypeError(PickLLMError, TypeError):
    """An argument of the wrong Python type, such as a number where a context name belongs."""


class PromptError(PickLLMError, ValueError):
    """A prompt the context mapper cannot read: empty, longer than ``max_prompt_bytes``, or
    not valid Unicode (a lone surrogate, which UTF-8 cannot encode)."""
