"""What the gateway answers when a request cannot be served: OpenAI-style error bodies.

Every refusal is an :class:`APIError` with the HTTP status, the OpenAI error ``type`` and
``code``, and a message that names the problem (never a secret, never a traceback). The
feedback errors are also :class:`pickllm.DecisionError`, so code that knows pickllm can catch
them as such.
"""

from __future__ import annotations

from typing import Any

from pickllm.errors import DecisionError, PickLLMError

__all__ = [
    "APIError",
    "DecisionCancelledError",
    "DecisionExpiredError",
    "DecisionSettledError",
    "UnknownDecisionError",
]


class APIError(PickLLMError):
    """A request the gateway refuses, with the HTTP status and OpenAI error fields to send."""

    status = 400
    type = "invalid_request_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if type is not None:
            self.type = type
        if code is not None:
            self.code = code
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class UnknownDecisionError(APIError, DecisionError):
    """``POST /v1/feedback`` names a decision this gateway never issued (or long forgot)."""

    status = 404
    code = "unknown_decision"


class DecisionSettledError(APIError, DecisionError):
    """The decision already received its feedback: nothing is counted twice."""

    status = 409
    code = "decision_settled"


class DecisionCancelledError(APIError, DecisionError):
    """The decision's request failed or its client left: there is nothing to grade."""

    status = 409
    code = "decision_cancelled"


class DecisionExpiredError(APIError, DecisionError):
    """The feedback came after ``feedback_timeout``: the default accuracy was applied."""

    status = 410
    code = "decision_expired"
