"""Secrets in the HTTP layer: which headers hold them, and redacting them from every message.

Some httpx/h11 errors quote header values, and servers echo keys in error bodies; every message
that leaves the HTTP layer goes through :meth:`Secrets.redact` (and :func:`excerpt`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pickllm.errors import ConfigError

__all__ = ["DETAIL_CHARS", "Secrets", "check_headers", "excerpt", "is_sensitive"]

#: How much of an error body is kept in exception messages.
DETAIL_CHARS = 500

# Header names whose values are treated as secrets and redacted wherever they could surface.
_SENSITIVE_HINTS = ("auth", "key", "token", "secret", "cookie", "session", "password")


def is_sensitive(header: str) -> bool:
    name = header.lower()
    return any(hint in name for hint in _SENSITIVE_HINTS)


def check_headers(headers: Mapping[str, str]) -> None:
    # h11 quotes an illegal header value in its exception message; check here with a message
    # that names the header only, so a key with a stray newline never ends up in a log.
    for name, value in headers.items():
        if not isinstance(value, str) or not all(" " <= ch <= "~" for ch in value):
            raise ConfigError(
                f"header {name!r} must be a string of printable ASCII characters (no newlines, "
                "tabs or non-ASCII); its value is not shown because it may be a secret"
            )


class Secrets:
    """Strings to redact; its repr shows nothing, so it can sit in an object's __dict__."""

    __slots__ = ("_values",)

    def __init__(self, values: Sequence[str]) -> None:
        # "Bearer sk-..." is redacted as a whole and so is the bare token after the scheme, which
        # is what servers echo. Longest first, so a secret that contains another is replaced
        # whole. Very short values are skipped: replacing "a" everywhere would garble messages.
        found = {part for v in values for part in (v, v.partition(" ")[2].strip())}
        self._values = tuple(sorted({v for v in found if len(v) >= 4}, key=len, reverse=True))

    @classmethod
    def of_headers(cls, headers: Mapping[str, str]) -> Secrets:
        return cls([value for name, value in headers.items() if is_sensitive(name)])

    def redact(self, text: str) -> str:
        for value in self._values:
            if value in text:
                text = text.replace(value, "***")
        return text

    def __repr__(self) -> str:
        return "<redacted>"


def excerpt(secrets: Secrets, text: str) -> str:
    """``text`` redacted and cut to :data:`DETAIL_CHARS` characters, for an error message."""
    text = secrets.redact(text)
    return text[:DETAIL_CHARS] + "..." if len(text) > DETAIL_CHARS else text
