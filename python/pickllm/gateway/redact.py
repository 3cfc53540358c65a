"""What the gateway never shows a client or a log: keys, and where its upstreams are.

Upstreams are not trusted to keep secrets: a server may echo the request's ``Authorization``
header in an error body. So nothing an upstream wrote reaches a client verbatim: a refusal
(a 4xx for the request itself) is rebuilt as the gateway's own OpenAI-style error from the
upstream's ``message``, ``type``, ``param`` and ``code``, each redacted and cut short; every
other failure is described by the gateway in its own words (the model's configured name, never
its URL, host or port).

Redaction replaces every configured key (clients' and providers'), and anything shaped like a
bearer token or an OpenAI-style ``sk-`` key, with ``***``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from pickllm.gateway.errors import APIError

__all__ = ["Redactor"]

#: Characters kept of each field of an upstream's error.
MAX_FIELD_CHARS = 500

_TOKEN_SHAPES = re.compile(
    r"(?i)\b(bearer|basic)\s+[^\s\"',;]+"  # an Authorization header's credentials
    r"|\bsk-[A-Za-z0-9_\-]{6,}"  # OpenAI-style keys
    r"|://[^/\s:@\"']+:[^/\s@\"']*@"  # user:password inside a URL
)


class Redactor:
    """Redacts the configured secrets and token-shaped strings; its repr shows nothing."""

    __slots__ = ("_secrets",)

    def __init__(self, secrets: Iterable[str]) -> None:
        # Longest first, so a secret that contains another is replaced whole.
        self._secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return _TOKEN_SHAPES.sub(_mask, text)

    def __repr__(self) -> str:
        return "<Redactor>"

    def refusal(self, status: int, body: bytes | None) -> APIError:
        """The gateway's own error for an upstream's refusal of a request (a 4xx for the
        request itself), with the upstream's explanation redacted."""
        fields: dict[str, Any] = {}
        try:
            payload = json.loads(body or b"")
        except (ValueError, RecursionError):
            payload = None
        if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
            fields = payload["error"]
        text = (
            self._field(fields.get("message"))
            or f"the upstream refused the request (HTTP {status})"
        )
        return APIError(
            text,
            status=status,
            type=self._field(fields.get("type")) or "invalid_request_error",
            code=self._field(fields.get("code")),
            param=self._field(fields.get("param")),
        )

    def _field(self, value: Any) -> str | None:
        if not isinstance(value, str) or not value:
            return None
        return self(value)[:MAX_FIELD_CHARS]


def _mask(match: re.Match[str]) -> str:
    found = match.group(0)
    if found.startswith("://"):
        return "://***@"
    scheme = match.group(1)
    return f"{scheme} ***" if scheme else "***"
