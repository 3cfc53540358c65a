"""The base URL of an HTTP endpoint, checked once: http(s), a host, and no credentials in it."""

from __future__ import annotations

import httpx

from pickllm.errors import ConfigError

__all__ = ["checked_base_url"]


def checked_base_url(base_url: object) -> str:
    """``base_url`` without its trailing slash, or ConfigError (never echoing credentials).

    >>> checked_base_url("http://127.0.0.1:8080/v1/")
    'http://127.0.0.1:8080/v1'
    """
    try:
        url = httpx.URL(base_url)  # type: ignore[arg-type]  # anything else is refused below
    except (TypeError, httpx.InvalidURL):
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        # A URL with "@" may carry credentials: do not echo it.
        shown = "" if isinstance(base_url, str) and "@" in base_url else f", got {base_url!r}"
        raise ConfigError(f"base_url must be an http:// or https:// URL{shown}")
    if url.userinfo:
        # Credentials in the URL would show up in repr, logs and every error message.
        raise ConfigError(
            "base_url must not contain credentials (user:password@); pass the key as "
            "api_key or in headers"
        )
    return str(url).rstrip("/")
