"""`RedisState`: where and how a router shares what it learns."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, field_validator

from pickllm.config import _Config
from pickllm.errors import ConfigError

if TYPE_CHECKING:
    import redis
    import redis.asyncio

    from pickllm._core import RouterCore
    from pickllm.state.replica import Replica

__all__ = ["RedisState"]

#: The URL schemes of a Redis server (TCP, TLS, Unix socket).
URL_SCHEMES = ("redis", "rediss", "unix")


class RedisState(_Config):
    """Share learned state (and budgets) through one Redis server.

    Every router given the same ``url`` and ``name`` learns from the same ordered feedback
    events; they must have the same configuration (pool, policy, reward, prior).

    Args:
        url: the Redis server, ``redis://host:port/db``.
        name: the shared state's name; its keys start with ``pickllm:<name>:``.
        buffer: feedback events kept locally while Redis is unreachable; beyond that new events
            are dropped and counted (``Router.shared_status().dropped``).
        checkpoint_every: events applied between two checkpoints (the replica holding the lease
            stores the learned state and trims the stream behind the previous checkpoint).
        lease_seconds: how long the checkpoint lease lasts without renewal.
        reconnect_seconds: the first pause after a failed exchange with Redis; it doubles
            with each failure in a row, up to 5 s.
        timeout_seconds: the longest one exchange with Redis may take (connecting included)
            before it counts as failed: ``sync`` and ``shared_status`` never wait on Redis
            longer than their own timeouts whatever it does.
        budget_timeout_seconds: the same for the shared budget's exchanges, which every
            routed call waits for (``route()`` on its thread; ``aroute()`` and the gateway
            through an async client, never blocking their event loop): keep it short.
        budget_outage: what a routed call with a budget does when Redis does not answer in
            time. ``"fail_closed"`` (the default) raises :class:`BudgetUnavailable` (a
            ``PickLLMError``; the gateway answers 503) and spends nothing; ``"fail_open"`` lets
            each process spend up to ``outage_allowance`` USD while Redis is unavailable,
            counted locally and added to the shared spending once Redis is back.
        outage_allowance: USD one process may spend with ``budget_outage="fail_open"`` while
            Redis is unavailable (in all, over the process's life).
        sentinels: Redis Sentinels (``"host:port"``) that name the primary of ``service``:
            after a failover the routers follow the promoted replica. ``url`` then gives only
            the password and database (``redis://:password@/0``).
        service: the Sentinel service (master) name.

    The password of a ``redis://user:password@host`` URL never appears in ``repr``, logs,
    status or errors.

    >>> RedisState(url="redis://127.0.0.1:6379/0", name="support-bot").buffer
    100000
    >>> RedisState(url="redis://app:s3cret@127.0.0.1:6379/0", name="bot")
    RedisState(url='redis://app:***@127.0.0.1:6379/0', name='bot', ...)
    """

    url: str
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    buffer: int = Field(default=100_000, ge=1)
    checkpoint_every: int = Field(default=50_000, ge=1)
    lease_seconds: float = Field(default=30.0, gt=0.0)
    reconnect_seconds: float = Field(default=0.2, gt=0.0)
    sentinels: tuple[str, ...] = ()
    service: str = Field(default="mymaster", min_length=1)
    timeout_seconds: float = Field(default=2.0, gt=0.0)
    budget_timeout_seconds: float = Field(default=0.25, gt=0.0)
    budget_outage: Literal["fail_closed", "fail_open"] = "fail_closed"
    outage_allowance: float = Field(default=0.0, ge=0.0)

    @field_validator("url")
    @classmethod
    def _redis_url(cls, url: str) -> str:
        # The messages never quote the URL: it may hold a password.
        if urlsplit(url).scheme not in URL_SCHEMES:
            raise ValueError("url must start with redis://, rediss:// or unix://")
        try:
            urlsplit(url).port  # noqa: B018 (raises on a port that is not a number)
        except ValueError:
            raise ValueError("url has a port that is not a number") from None
        return url

    @field_validator("sentinels")
    @classmethod
    def _host_ports(cls, sentinels: tuple[str, ...]) -> tuple[str, ...]:
        for sentinel in sentinels:
            host, _, port = sentinel.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"each sentinel must be 'host:port' ({sentinel!r} is not)")
        return sentinels

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ConfigError as error:  # it quotes the values given: a URL's password too
            message = str(error)
            for value in data.values():
                password = urlsplit(value).password if isinstance(value, str) else None
                if password:
                    message = message.replace(password, "***")
            raise ConfigError(message) from None

    def _client(self, socket_timeout: float, pool_timeout: float) -> redis.Redis:
        """A client of the current primary: at ``url``, or the one ``sentinels`` name for
        ``service``. No hidden retries (the callers handle failures, where the order of events
        is known); a blocking pool, so that many threads wait for a free connection."""
        import redis

        client: redis.Redis = self._connect(redis, socket_timeout, pool_timeout)
        return client

    def _async_client(self, socket_timeout: float, pool_timeout: float) -> redis.asyncio.Redis:
        """The same as ``_client`` for an event loop (``redis.asyncio``): its connections
        belong to the loop running when it is first used."""
        import redis.asyncio

        client: redis.asyncio.Redis = self._connect(redis.asyncio, socket_timeout, pool_timeout)
        return client

    def _connect(self, module: Any, socket_timeout: float, pool_timeout: float) -> Any:
        """A client built from ``module``: ``redis`` or ``redis.asyncio`` (same names)."""
        from redis.backoff import NoBackoff

        retry = importlib.import_module(f"{module.__name__}.retry")
        options: dict[str, Any] = {
            "socket_connect_timeout": self.timeout_seconds,
            "socket_timeout": socket_timeout,
            "retry": retry.Retry(NoBackoff(), 0),
        }
        if not self.sentinels:
            pool = module.BlockingConnectionPool.from_url(
                self.url, max_connections=64, timeout=pool_timeout, **options
            )
            return module.Redis(connection_pool=pool)
        parts = urlsplit(self.url)
        db = int(parts.path.strip("/") or 0)
        hosts = [(host, int(port)) for host, _, port in (s.rpartition(":") for s in self.sentinels)]
        sentinels = importlib.import_module(f"{module.__name__}.sentinel")
        sentinel = sentinels.Sentinel(hosts, sentinel_kwargs=options)
        return sentinel.master_for(
            self.service,
            connection_pool_class=sentinels.SentinelConnectionPool,
            db=db,
            username=parts.username,
            password=parts.password,
            **options,
        )

    def _password(self) -> str | None:
        return urlsplit(self.url).password

    def _redacted_url(self) -> str:
        parts = urlsplit(self.url)
        if parts.password is None:
            return self.url
        user = f"{parts.username}:" if parts.username else ":"
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=f"{user}***@{host}"))

    def __repr__(self) -> str:
        return f"RedisState(url={self._redacted_url()!r}, name={self.name!r}, ...)"

    def __str__(self) -> str:
        return repr(self)

    def _attach(self, core: RouterCore) -> Replica:
        from pickllm.state.replica import Replica  # the redis extra, only when used

        return Replica(self, core)
