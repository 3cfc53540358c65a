"""The gateway's configuration: a TOML file validated by pydantic.

Secrets are never written in the file: a key is given as ``"env:NAME"`` and read from the
environment when the file is loaded (an inline secret is refused, so it cannot leak through a
committed config). Validation errors name the key and, when it can be found, its line::

    pickllm.toml:12: routers.auto.max_attempts: Input should be a valid integer (got 'three')

>>> config = GatewayConfig.from_toml('''
... [models.small]
... base_url = "http://127.0.0.1:8080/v1"
... [models.large]
... base_url = "http://127.0.0.1:8081/v1"
... model_id = "gemma-3-270m"
... [routers.auto]
... models = ["small", "large"]
... policy = { kind = "q_learning", learning_rate = "sample_average" }
... ''')
>>> config.routers["auto"].models, config.models["large"].model_id
(['small', 'large'], 'gemma-3-270m')
"""

from __future__ import annotations

import difflib
import math
import os
import re
import tomllib
import urllib.parse
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from pickllm.budget import Budget
from pickllm.config import Policy, Reward, build_policy, default_policy, policy_kinds
from pickllm.contexts import PromptContexts
from pickllm.errors import ConfigError
from pickllm.health import CircuitBreaker
from pickllm.routing import DEFAULT_DEADLINE, DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_MAX_RETRY_AFTER
from pickllm.state import RedisState
from pickllm.warm_start import Seed

__all__ = [
    "ContextsConfig",
    "GatewayConfig",
    "JudgeConfig",
    "ModelConfig",
    "PolicyConfig",
    "RouterConfig",
    "ServerConfig",
    "load_config",
    "resolve_secret",
]

_ENV_REFERENCE = re.compile(r"^env:([A-Za-z_][A-Za-z0-9_]*)$")
#: Names of routers and models: what clients send as ``model`` and what metrics label.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")


def resolve_secret(reference: str, key: str) -> str:
    """The value of an ``env:NAME`` reference; ``key`` names the config key in errors.
    The secret itself never appears in an error message."""
    match = _ENV_REFERENCE.match(reference)
    if match is None:
        raise ConfigError(
            f"{key}: secrets are given as 'env:NAME' references, never inline "
            f"(got a value of {len(reference)} characters)"
        )
    value = os.environ.get(match.group(1))
    if not value:
        raise ConfigError(f"{key}: environment variable {match.group(1)} is not set or empty")
    return value


def _secret_reference(value: str) -> str:
    if _ENV_REFERENCE.match(value) is None:
        raise ValueError("secrets are given as 'env:NAME' references, never inline")
    return value


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)


class ServerConfig(_Section):
    """``[server]``: who may call, how big a request may be, how long a client may take."""

    #: ``env:NAME`` references to the keys clients send as ``Authorization: Bearer <key>``;
    #: empty: no authentication (only on a loopback host, unless ``allow_anonymous``).
    api_keys: list[str] = Field(default_factory=list)
    #: ``env:NAME`` references to keys that may also settle any client's decisions.
    admin_keys: list[str] = Field(default_factory=list)
    #: Serve without api_keys on a host other than loopback (anyone who can reach it may call).
    allow_anonymous: bool = False
    #: Request bodies larger than this are refused with 413.
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    #: Seconds a client has to send its request headers (else the connection is closed) and
    #: then its body (else 408), so that half-sent requests cannot hold connections.
    header_timeout: float = Field(default=10.0, gt=0.0)
    body_timeout: float = Field(default=30.0, gt=0.0)
    #: Connections one worker holds at most; beyond, new ones get a 503 and are closed.
    max_connections: int = Field(default=500, ge=1)
    #: The largest ``n`` (or ``best_of``) a request may ask for: each choice is paid for.
    max_choices: int = Field(default=8, ge=1)
    #: How many distinct contexts get their own metric labels; later ones count as "_other".
    #: 0 (the default): none, since contexts come from clients and /metrics needs no key.
    metrics_contexts: int = Field(default=0, ge=0)
    #: Serve the dashboard, ``GET /ui`` (behind the same keys); ``GET /v1/stats`` stays on.
    ui: bool = True
    #: Seconds a router's shared state may be out of reach of Redis (or have dropped events)
    #: before ``GET /readyz`` says not ready (see docs/gateway.md, "Readiness").
    ready_grace: float = Field(default=10.0, gt=0.0)

    @field_validator("api_keys", "admin_keys")
    @classmethod
    def _references(cls, keys: list[str]) -> list[str]:
        return [_secret_reference(key) for key in keys]


class ModelConfig(_Section):
    """``[models.NAME]``: one OpenAI-compatible upstream and its prices (USD per 1M tokens)."""

    base_url: str
    #: The upstream's name for the model; defaults to the section name.
    model_id: str | None = Field(default=None, min_length=1)
    #: ``env:NAME`` reference to the upstream's key (sent as a Bearer token).
    api_key: str | None = None
    input_price: float = Field(default=0.0, ge=0.0)
    output_price: float = Field(default=0.0, ge=0.0)
    #: Caps ``max_tokens`` of routed requests; budgets need it (it bounds a call's cost).
    max_tokens: int | None = Field(default=None, gt=0)
    #: Seconds allowed to connect and to receive the response headers (first byte).
    timeout: float = Field(default=60.0, gt=0.0)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        try:
            parts = urllib.parse.urlsplit(url)
            parts.port  # noqa: B018 (raises on a port that is not a number)
        except ValueError:
            raise ValueError("base_url is not a valid URL") from None
        if parts.username is not None or parts.password is not None or "@" in parts.netloc:
            # Whatever names the URL (an error, a log, /v1/models) would show the secret.
            raise ValueError(
                "base_url must not hold credentials (user:password@): give the key as "
                "api_key = 'env:NAME'"
            )
        return url.rstrip("/")

    @field_validator("api_key")
    @classmethod
    def _reference(cls, key: str | None) -> str | None:
        return None if key is None else _secret_reference(key)


class PolicyConfig(_Section):
    """``policy = {kind = ..., ...}``: the learner, mapped onto pickllm's policy configs.
    The other keys are the policy's own arguments (checked by that policy). Without ``kind``,
    the default learner, as for ``Router()`` (:func:`pickllm.default_policy`)."""

    model_config = ConfigDict(frozen=True, extra="allow", strict=True, allow_inf_nan=False)

    kind: str = Field(default_factory=lambda: default_policy().kind)

    def build(self) -> Policy:
        kinds = policy_kinds()
        if self.kind not in kinds:
            raise ConfigError(f"policy.kind must be one of {sorted(kinds)}, got {self.kind!r}")
        return build_policy(self.kind, dict(self.model_extra or {}))


class ContextsConfig(_Section):
    """``contexts = {kind = "prompts", ...}``: contexts discovered from the request's prompt
    when the client names none (:class:`pickllm.PromptContexts`; see docs/contexts.md). The
    other keys are ``PromptContexts`` fields (``warmup``, ``max_clusters``, ``min_silhouette``,
    ``seed``, ``combine``, ``max_prompt_bytes``, ``background_fit``), checked by it. The gateway
    fits in the background by default (``background_fit = true``): the request that completes
    the warm-up, and every other, never waits for the fit."""

    model_config = ConfigDict(frozen=True, extra="allow", strict=True, allow_inf_nan=False)

    #: The only kind so far: clusters of the prompts' words.
    kind: Literal["prompts"]

    def build(self) -> PromptContexts:
        settings = dict(self.model_extra or {})
        known = list(PromptContexts.model_fields)
        unknown = [name for name in settings if name not in known]
        if unknown:
            raise ConfigError(
                f"PromptContexts has no setting {', '.join(map(repr, unknown))}; "
                f"its settings: {', '.join(known)}"
            )
        settings.setdefault("background_fit", True)
        return PromptContexts(**settings)


class JudgeConfig(_Section):
    """``judge = {model = ..., ...}``: grade answers that got no feedback in time with an LLM
    judge (:class:`pickllm.scorers.LLMJudge`) served by a configured model."""

    model: str
    rubric: str | None = None
    scale: int = Field(default=10, ge=1)
    timeout: float = Field(default=60.0, gt=0.0)
    #: Bytes of question and answer kept per decision until its feedback deadline; a decision
    #: whose question and answer are larger is not judged (its default_accuracy applies).
    max_kept_bytes: int = Field(default=64 * 1024, ge=1)


class WarmStartConfig(_Section):
    """``warm_start = {...}``: seed the router's contexts from evaluated prompts when the gateway
    starts (:meth:`pickllm.Router.warm_start`). Either ``path``, RouterBench-format files or
    folders (one or a list; relative to the config file; columns named as the router's models,
    others left out), or ``means``, per context and model ``[mean accuracy, count]`` or
    ``[mean accuracy, count, mean cost, mean latency]``. Each (context, model) is observed
    ``min(count, weight)`` times, so live feedback outweighs the seed after ``weight``
    feedbacks of a model. Loaded and checked with the config; applied when the gateway starts."""

    path: str | list[str] | None = None
    means: dict[str, dict[str, list[int | float]]] | None = None
    weight: int = Field(default=10, ge=1)
    _seeds: list[Seed] | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _one_source(self) -> WarmStartConfig:
        if (self.path is None) == (self.means is None):
            raise ValueError("give either path (RouterBench files) or means, not both or neither")
        return self

    def load(self, models: list[str], base: Path) -> list[Seed]:
        """The seeds for a router of ``models`` (read once, then kept): every value checked,
        so that a bad file or mean fails when the config loads, not when the gateway starts."""
        if self._seeds is not None:
            return self._seeds
        from pickllm.replay import DataError
        from pickllm.warm_start import seeds

        if self.means is not None:
            unknown = sorted(
                {m for by_model in self.means.values() for m in by_model} - set(models)
            )
            if unknown:
                raise ConfigError(f"means names models outside the router's pool: {unknown}")
            source: Any = self.means
        else:
            paths = [self.path] if isinstance(self.path, str) else list(self.path or [])
            source = [base / path for path in paths]
        try:
            loaded = seeds(source, models)
        except (DataError, OSError) as error:
            raise ConfigError(str(error)) from None
        for seed in loaded:
            where = f"{seed.context!r}/{seed.model!r}"
            if not 0.0 <= seed.accuracy <= 1.0:
                raise ConfigError(f"{where}: mean accuracy must be in [0, 1], got {seed.accuracy}")
            if not (math.isfinite(seed.cost) and seed.cost >= 0.0):
                raise ConfigError(f"{where}: mean cost must be finite and >= 0, got {seed.cost}")
            if not (math.isfinite(seed.latency) and seed.latency >= 0.0):
                raise ConfigError(
                    f"{where}: mean latency must be finite and >= 0, got {seed.latency}"
                )
        self._seeds = loaded
        return loaded

    def means_of(self, seeds: list[Seed]) -> dict[str, dict[str, tuple[float, int, float, float]]]:
        """``seeds`` as the means :meth:`pickllm.Router.warm_start` takes."""
        out: dict[str, dict[str, tuple[float, int, float, float]]] = {}
        for seed in seeds:
            out.setdefault(seed.context, {})[seed.model] = (
                seed.accuracy, seed.count, seed.cost, seed.latency
            )  # fmt: skip
        return out


class RouterConfig(_Section):
    """``[routers.NAME]``: a learned choice among configured models."""

    models: list[str] = Field(min_length=1)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    reward: dict[str, Any] = Field(default_factory=dict)
    seed: int | None = Field(default=None, ge=0, lt=2**64)
    default_context: str = "default"
    #: Accuracy applied to a decision that received no ``POST /v1/feedback`` in time.
    default_accuracy: float = Field(default=0.5, ge=0.0, le=1.0)
    #: Seconds a decision waits for ``POST /v1/feedback`` after its answer ended.
    feedback_timeout: float = Field(default=300.0, gt=0.0)
    #: Grades a decision that got no feedback by its deadline (instead of default_accuracy).
    judge: JudgeConfig | None = None
    #: Calls made for one request before giving up (fallbacks happen before the first byte).
    max_attempts: int = Field(default=3, ge=1)
    #: Seconds for one request, every attempt included, to the answer's last byte (``false``:
    #: unbounded). As ``Router(deadline=...)``.
    deadline: Annotated[float, Field(gt=0.0)] | Literal[False] = DEFAULT_DEADLINE
    #: Seconds for one attempt, within ``deadline`` (``false``: whatever is left of it).
    attempt_deadline: Annotated[float, Field(gt=0.0)] | Literal[False] = False
    #: Bytes read at most from one answer, body or stream (``false``: unbounded).
    max_response_bytes: Annotated[int, Field(ge=1)] | Literal[False] = DEFAULT_MAX_RESPONSE_BYTES
    #: The longest a 429's Retry-After holds a model out, in seconds.
    max_retry_after: float = Field(default=DEFAULT_MAX_RETRY_AFTER, gt=0.0)
    #: Circuit breaker (``CircuitBreaker`` fields); ``false`` disables it.
    breaker: dict[str, Any] | Literal[False] = Field(default_factory=dict)
    #: Spending caps (``Budget`` fields: per_context, total).
    budget: dict[str, Any] | None = None
    #: Learning shared across workers (``pickllm.RedisState`` arguments: url, name, ...),
    #: validated when the file loads (:meth:`GatewayConfig.from_toml`).
    shared: dict[str, Any] | None = None
    #: Contexts discovered from prompts when a request names none (``kind = "prompts"``).
    contexts: ContextsConfig | None = None
    #: Where every decision is logged (``Router(decision_log=...)``).
    decision_log: str | None = None
    max_pending: int = Field(default=100_000, ge=1)
    #: Seeds the contexts from evaluated prompts at start (see WarmStartConfig).
    warm_start: WarmStartConfig | None = None

    # These fields are unions (a value or false): checked here in full, so that a wrong value
    # gets one message rather than one per member of the union.
    @field_validator("deadline", "attempt_deadline", "max_response_bytes", mode="before")
    @classmethod
    def _positive_or_false(cls, value: Any, info: ValidationInfo) -> Any:
        if value is False:
            return value
        whole = info.field_name == "max_response_bytes"
        kinds = int if whole else int | float
        # 0 == False in Python, so Literal[False] alone would take a 0 for "unbounded".
        if isinstance(value, bool) or not isinstance(value, kinds) or value <= 0:
            number = "a whole number" if whole else "a number"
            raise ValueError(f"must be {number} > 0, or false for unbounded")
        return value

    @field_validator("breaker", mode="before")
    @classmethod
    def _table_or_false(cls, value: Any) -> Any:
        if value is not False and not isinstance(value, dict):
            raise ValueError("must be a table of CircuitBreaker fields, or false to disable it")
        return value

    @field_validator("models")
    @classmethod
    def _unique(cls, models: list[str]) -> list[str]:
        if len(set(models)) != len(models):
            raise ValueError("models must be unique")
        return models

    def build_reward(self) -> Reward:
        return Reward(**self.reward)

    def build_breaker(self) -> CircuitBreaker | None:
        return None if self.breaker is False else CircuitBreaker(**self.breaker)

    def build_budget(self) -> Budget | None:
        return None if self.budget is None else Budget(**self.budget)

    def build_shared(self) -> RedisState | None:
        return None if self.shared is None else RedisState(**_shared_arguments(self.shared))

    def build_contexts(self) -> PromptContexts | None:
        return None if self.contexts is None else self.contexts.build()


class GatewayConfig(_Section):
    """The whole file: ``[server]``, ``[models.*]``, ``[routers.*]``."""

    server: ServerConfig = Field(default_factory=ServerConfig)
    models: dict[Annotated[str, Field(pattern=_NAME.pattern)], ModelConfig] = Field(min_length=1)
    routers: dict[Annotated[str, Field(pattern=_NAME.pattern)], RouterConfig] = Field(
        default_factory=dict
    )

    @model_validator(mode="after")
    def _references(self) -> GatewayConfig:
        clash = sorted(set(self.models) & set(self.routers))
        if clash:
            raise ValueError(f"a name is either a model or a router, not both: {clash}")
        for name, router in self.routers.items():
            unknown = [m for m in router.models if m not in self.models]
            if unknown:
                raise ValueError(f"routers.{name}.models names unknown models {unknown}")
            if router.judge is not None and router.judge.model not in self.models:
                raise ValueError(
                    f"routers.{name}.judge.model names an unknown model {router.judge.model!r}"
                )
            if router.budget is not None:
                unbounded = [m for m in router.models if self.models[m].max_tokens is None]
                if unbounded:
                    raise ValueError(
                        f"routers.{name}.budget needs max_tokens on every model (it bounds a "
                        f"call's cost); missing on {unbounded}"
                    )
        return self

    def model_id(self, name: str) -> str:
        return self.models[name].model_id or name

    def check_secrets(self) -> None:
        """Raise ConfigError, naming the key and the variable, for the first ``env:NAME``
        reference whose variable is unset or empty: checked before serving, not per worker."""
        for i, key in enumerate(self.server.api_keys):
            resolve_secret(key, f"server.api_keys[{i}]")
        for name, model in self.models.items():
            if model.api_key is not None:
                resolve_secret(model.api_key, f"models.{name}.api_key")

    @classmethod
    def from_toml(
        cls, text: str, source: str = "<config>", *, workers: int = 1, base: Path | None = None
    ) -> GatewayConfig:
        """Parse and validate TOML text, to be served by ``workers`` processes; errors name
        ``source``, the key and its line. Relative paths (``warm_start.path``) are read from
        ``base`` (the current folder when None)."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{source}: invalid TOML: {error}") from None
        try:
            config = cls.model_validate(data)
        except ValidationError as error:
            raise ConfigError(_describe(error, text, source)) from None
        config._check_shared(text, source)
        config._check_builds(text, source)
        config._check_workers(workers, text, source)
        config._load_warm_starts(text, source, base or Path.cwd())
        return config

    def _check_shared(self, text: str, source: str) -> None:
        """Each router's ``shared`` table as ``RedisState`` takes it: unknown keys (with the
        nearest known one), types, the URL's scheme, the sentinels' shape, ``budget_outage``;
        the URL (it may hold a password) and the values of unknown keys are never shown."""
        for name, router in self.routers.items():
            if router.shared is None:
                continue
            try:
                _SharedTable.model_validate(_shared_arguments(router.shared))
            except ValidationError as error:
                where = ("routers", name, "shared")
                raise ConfigError(_describe(error, text, source, where)) from None

    def _load_warm_starts(self, text: str, source: str, base: Path) -> None:
        """Read and check every router's warm start, so that a bad one fails at load time."""
        for name, router in self.routers.items():
            if router.warm_start is None:
                continue
            try:
                if router.shared is not None:
                    raise ConfigError(
                        "not with shared: every worker and every restart would seed the shared "
                        "state again; seed it once with Router.warm_start from Python"
                    )
                router.warm_start.load(router.models, base)
            except ConfigError as error:
                where = _line(text, ("routers", name, "warm_start"))
                message = str(error).removeprefix("warm start: ")
                raise ConfigError(
                    f"{source}{where}: routers.{name}.warm_start: {message}"
                ) from None

    def _check_builds(self, text: str, source: str) -> None:
        """Build each router's policy, reward, breaker and budget once, so that a bad value
        fails at load time with its key rather than at the first request."""
        for name, router in self.routers.items():
            for key, build in (
                ("policy", router.policy.build),
                ("reward", router.build_reward),
                ("breaker", router.build_breaker),
                ("budget", router.build_budget),
                ("contexts", router.build_contexts),
            ):
                try:
                    build()
                except ConfigError as error:
                    where = _line(text, ("routers", name, key))
                    raise ConfigError(f"{source}{where}: routers.{name}.{key}: {error}") from None

    def _check_workers(self, workers: int, text: str, source: str) -> None:
        """Refuse a router that ``workers`` processes cannot serve consistently.

        With prompt contexts, each worker would fit its own clusters on its own warm-up, so the
        same prompt could be "cluster-1" on one worker and "cluster-4" on another: refused with
        several workers unless the router names ``shared`` state (through which one fitted
        mapper is published to every worker). The one place that decides it."""
        if workers <= 1:
            return
        for name, router in self.routers.items():
            if router.contexts is not None and router.shared is None:
                where = _line(text, ("routers", name, "contexts"))
                raise ConfigError(
                    f"{source}{where}: routers.{name}.contexts: prompt contexts with --workers "
                    f"{workers} need shared state (shared = {{ url = ..., name = ... }}): each "
                    "worker would otherwise fit its own clusters and assign the same prompt "
                    "differently; run one worker, or configure shared"
                )


def load_config(path: str | os.PathLike[str], workers: int = 1) -> GatewayConfig:
    """Read and validate a gateway config file, to be served by ``workers`` processes."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read the config {file}: {error.strerror}") from None
    return GatewayConfig.from_toml(text, str(file), workers=workers, base=file.parent)


def _describe(error: ValidationError, text: str, source: str, within: tuple[str, ...] = ()) -> str:
    """One line per problem; ``within``: where the validated table is (``routers.x.shared``),
    whose keys a misspelt one is compared with."""
    lines = []
    for problem in error.errors():
        location = within + tuple(str(part) for part in problem["loc"])
        key = ".".join(location) or "(top level)"
        value = problem.get("input")
        secret = _looks_secret(location) or (within and problem["type"] == "extra_forbidden")
        shown = "" if isinstance(value, dict) or secret else f" (got {value!r})"
        message = problem["msg"].removeprefix("Value error, ")
        if within and problem["type"] == "extra_forbidden":
            message = "unknown key" + _suggestion(location[-1], list(RedisState.model_fields))
        lines.append(f"{source}{_line(text, location)}: {key}: {message}{shown}")
    return "\n".join(lines)


class _SharedTable(RedisState):
    """``RedisState``'s fields and checks with pydantic's errors, one per problem (RedisState
    itself turns them into one ``ConfigError`` line)."""

    __init__ = BaseModel.__init__


def _suggestion(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (known keys: {', '.join(known)})"


def _shared_arguments(table: dict[str, Any]) -> dict[str, Any]:
    """A ``shared`` table as ``RedisState`` arguments (TOML has arrays, not tuples)."""
    sentinels = table.get("sentinels")
    return table | {"sentinels": tuple(sentinels)} if isinstance(sentinels, list) else table


def _looks_secret(location: tuple[str, ...]) -> bool:
    # A refused base_url, or a shared state's url, may hold credentials: never shown.
    if "shared" in location and location[-1] == "url":
        return True
    return any(part in ("api_key", "api_keys", "admin_keys", "base_url") for part in location)


def _line(text: str, location: tuple[str, ...]) -> str:
    """``:N`` for the line that sets ``location`` (a table header or a key), or ``""``.

    TOML parsers report no positions, so this looks for the deepest table header that is a
    prefix of the location, then for the next key of the location below it."""
    rows = text.splitlines()
    best, depth = -1, 0
    for index, row in enumerate(rows):
        header = re.match(r"^\s*\[+\s*([^\]]+?)\s*\]+", row)
        if header is None:
            continue
        parts = tuple(part.strip().strip('"') for part in header.group(1).split("."))
        if parts == location[: len(parts)] and len(parts) >= depth:
            best, depth = index, len(parts)
    if best < 0 and location and location[0] in ("server", "models", "routers"):
        return ""
    if depth < len(location):
        key = location[depth]
        for index in range(best + 1, len(rows)):
            if re.match(r"^\s*\[", rows[index]):
                break
            if re.match(rf"^\s*\"?{re.escape(key)}\"?\s*=", rows[index]):
                return f":{index + 1}"
    return f":{best + 1}" if best >= 0 else ""
