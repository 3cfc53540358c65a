"""Who is calling: the API keys of ``[server]``, checked on every endpoint but the probes.

A caller is known by the position of its key in ``api_keys`` ("key-0", "key-1", ...), the same
in every worker because every worker reads the same file; with no keys configured every caller
is "anonymous". The principal is what a decision remembers, so that only the key that made a
decision can settle it (or a key of ``admin_keys``).
"""

from __future__ import annotations

import hmac

from starlette.requests import Request

from pickllm.gateway.config import ServerConfig, resolve_secret
from pickllm.gateway.errors import APIError

__all__ = ["ADMIN", "ANONYMOUS", "Keys"]

#: The principal of every caller when no api_keys are configured.
ANONYMOUS = "anonymous"
#: The principal of a caller with one of ``admin_keys``: may settle any decision.
ADMIN = "admin"


class Keys:
    """The configured keys (client and admin), compared in constant time."""

    def __init__(self, server: ServerConfig) -> None:
        self._keys = [
            (f"key-{i}", resolve_secret(key, f"server.api_keys[{i}]").encode())
            for i, key in enumerate(server.api_keys)
        ] + [
            (ADMIN, resolve_secret(key, f"server.admin_keys[{i}]").encode())
            for i, key in enumerate(server.admin_keys)
        ]

    def secrets(self) -> list[str]:
        """Every configured key (for redaction)."""
        return [key.decode() for _, key in self._keys]

    def __bool__(self) -> bool:
        return bool(self._keys)

    def match(self, offered: bytes) -> str | None:
        """The principal whose key ``offered`` is, else None."""
        # Compare with every key, always, so timing says nothing about which matched.
        found = None
        for principal, key in self._keys:
            if hmac.compare_digest(offered, key) and found is None:
                found = principal
        return found

    def principal(self, request: Request) -> str:
        """Who sent ``request``, or a 401 ``APIError`` when its key is missing or wrong."""
        if not self._keys:
            return ANONYMOUS
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() == "bearer" and given:
            found = self.match(given.strip().encode())
            if found is not None:
                return found
        raise APIError(
            "missing or invalid API key (send Authorization: Bearer <key>)",
            status=401,
            code="invalid_api_key",
        )
