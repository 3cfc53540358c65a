"""The gateway's config file and its delayed-feedback store, without servers."""

from __future__ import annotations

from pathlib import Path

import pytest

from pickllm import ConfigError, Decision, DecisionError, QLearning
from pickllm.gateway.config import GatewayConfig, load_config, resolve_secret
from pickllm.gateway.errors import (
    DecisionCancelledError,
    DecisionExpiredError,
    DecisionSettledError,
    UnknownDecisionError,
)
from pickllm.gateway.feedback import FeedbackStore, Outcome, Pending

MODELS = """
[models.small]
base_url = "http://127.0.0.1:8080/v1"
[models.large]
base_url = "http://127.0.0.1:8081/v1"
"""


def test_the_issue_sketch_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PICKLLM_KEY", "k")
    config = GatewayConfig.from_toml(
        """
[server]
api_keys = ["env:PICKLLM_KEY"]
[models.small]
base_url = "http://127.0.0.1:8080/v1"
model_id = "smollm2-135m-instruct"
api_key = "env:SMALL_KEY"
input_price = 0.05
output_price = 0.05
[models.large]
base_url = "http://127.0.0.1:8081/v1"
[routers.auto]
models = ["small", "large"]
policy = { kind = "q_learning", learning_rate = "sample_average" }
reward = { accuracy = 1.0, cost = 0.5, latency = 0.5 }
"""
    )
    router = config.routers["auto"]
    assert router.policy.build() == QLearning("sample_average")
    assert router.build_reward().cost == 0.5
    assert config.model_id("small") == "smollm2-135m-instruct"
    assert config.model_id("large") == "large"


def test_errors_name_the_key_and_its_line() -> None:
    text = MODELS + '[routers.auto]\nmodels = ["small"]\nmax_attempts = "three"\n'
    with pytest.raises(ConfigError) as caught:
        GatewayConfig.from_toml(text, "pickllm.toml")
    assert "pickllm.toml:8: routers.auto.max_attempts" in str(caught.value)


def test_policy_errors_name_the_router_and_line() -> None:
    text = (
        MODELS
        + '[routers.auto]\nmodels = ["small"]\npolicy = { kind = "q_learning", epsilon = 2.0 }\n'
    )
    with pytest.raises(ConfigError, match=r"pickllm.toml:8: routers.auto.policy: .*epsilon"):
        GatewayConfig.from_toml(text, "pickllm.toml")


def test_unknown_policy_kind() -> None:
    text = MODELS + '[routers.auto]\nmodels = ["small"]\npolicy = { kind = "magic" }\n'
    with pytest.raises(ConfigError, match=r"policy\.kind must be one of"):
        GatewayConfig.from_toml(text)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('[routers.auto]\nmodels = ["small", "huge"]\n', "unknown models"),
        ('[routers.auto]\nmodels = ["small", "small"]\n', "unique"),
        ('[routers.small]\nmodels = ["large"]\n', "either a model or a router"),
        ("[routers.auto]\nmodels = []\n", "at least 1"),
        ('[routers.auto]\nmodels = ["small"]\nbudget = { total = 1.0 }\n', "max_tokens"),
        ('[routers.auto]\nmodels = ["small"]\ncolour = "blue"\n', "colour"),
        ('[routers.auto]\nmodels = ["small"]\ndefault_accuracy = 1.5\n', "default_accuracy"),
        (
            '[routers.auto]\nmodels = ["small"]\njudge = { model = "nope" }\n',
            "unknown model 'nope'",
        ),
        ('[routers.auto]\nmodels = ["small"]\ndeadline = 0.0\n', "deadline"),
        ('[routers.auto]\nmodels = ["small"]\ndeadline = true\n', "deadline"),
        ('[routers.auto]\nmodels = ["small"]\nattempt_deadline = -1.0\n', "attempt_deadline"),
        ('[routers.auto]\nmodels = ["small"]\nmax_response_bytes = 0\n', "max_response_bytes"),
        ('[routers.auto]\nmodels = ["small"]\nmax_retry_after = 0.0\n', "max_retry_after"),
    ],
)
def test_bad_routers(extra: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        GatewayConfig.from_toml(MODELS + extra)


def test_limits_default_to_routers_and_false_is_unbounded() -> None:
    from pickllm.gateway.routes import RoutedModels
    from pickllm.routing import RouteOptions

    defaults = RouteOptions()
    config = GatewayConfig.from_toml(MODELS + '[routers.auto]\nmodels = ["small"]\n')
    auto = config.routers["auto"]
    assert (auto.deadline, auto.max_response_bytes, auto.max_retry_after) == (
        defaults.deadline,
        defaults.max_response_bytes,
        defaults.max_retry_after,
    )
    assert auto.attempt_deadline is False  # RouteOptions' None: what is left of the deadline
    unbounded = GatewayConfig.from_toml(
        MODELS + '[routers.auto]\nmodels = ["small"]\ndeadline = false\n'
        "max_response_bytes = false\nmax_retry_after = 5.0\n"
    )
    routed = RoutedModels("auto", unbounded.routers["auto"], unbounded)
    assert routed.health.max_hold == 5.0


@pytest.mark.anyio
async def test_attempt_limits_take_the_nearer_deadline() -> None:
    from pickllm.gateway.routes import RoutedModels

    config = GatewayConfig.from_toml(
        MODELS + '[routers.a]\nmodels = ["small"]\ndeadline = 10.0\nattempt_deadline = 2.0\n'
        '[routers.b]\nmodels = ["small"]\ndeadline = false\nmax_response_bytes = false\n'
    )
    a = RoutedModels("a", config.routers["a"], config)
    b = RoutedModels("b", config.routers["b"], config)
    due = a.deadline()
    assert due is not None
    assert b.deadline() is None
    # The attempt's 2 s end before the request's 10 s; past them only the request's remain.
    assert a.limits(due).deadline_name == "attempt deadline of 2 s"
    assert a.limits(due - 9.0).deadline_name == "request deadline of 10 s"
    assert a.limits(due).max_bytes == 8 * 1024 * 1024
    unbounded = b.limits(None)
    assert (unbounded.deadline, unbounded.max_bytes) == (None, None)


def test_invalid_toml_and_bad_url() -> None:
    with pytest.raises(ConfigError, match="invalid TOML"):
        GatewayConfig.from_toml("[models.x\n")
    with pytest.raises(ConfigError, match="base_url must start with http"):
        GatewayConfig.from_toml('[models.x]\nbase_url = "ftp://x"\n')


def test_inline_secrets_are_refused_without_echoing_them() -> None:
    secret = "sk-live-very-secret"
    text = f'[models.x]\nbase_url = "http://127.0.0.1:1/v1"\napi_key = "{secret}"\n'
    with pytest.raises(ConfigError) as caught:
        GatewayConfig.from_toml(text)
    assert "env:NAME" in str(caught.value)
    assert secret not in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        resolve_secret(secret, "server.api_keys[0]")
    assert secret not in str(caught.value)


def test_missing_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PICKLLM_ABSENT", raising=False)
    with pytest.raises(ConfigError, match="PICKLLM_ABSENT is not set"):
        resolve_secret("env:PICKLLM_ABSENT", "models.x.api_key")


#: A router with shared state; each case below adds lines to its ``[routers.auto.shared]``.
SHARED = (
    MODELS
    + """[routers.auto]
models = ["small"]
[routers.auto.shared]
url = "redis://app:hunter2@127.0.0.1:6379/0"
name = "support"
"""
)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (
            "bufer = 10",
            r":11: routers\.auto\.shared\.bufer: unknown key \(did you mean 'buffer'\?\)$",
        ),
        (
            'password = "hunter2"',
            r":11: routers\.auto\.shared\.password: unknown key \(known keys: url,",
        ),
        ('timeout_seconds = "2"', r":11: routers\.auto\.shared\.timeout_seconds: .*valid number"),
        ("buffer = 0", r":11: routers\.auto\.shared\.buffer: .*greater than or equal to 1"),
        ('budget_outage = "open"', r":11: .*budget_outage: .*'fail_closed' or 'fail_open'"),
        ('sentinels = ["127.0.0.1"]', r":11: .*sentinels: each sentinel must be 'host:port'"),
        ('sentinels = "127.0.0.1:26379"', r":11: routers\.auto\.shared\.sentinels: .*tuple"),
        ('sentinels = ["127.0.0.1:26379"]\nservice = ""', r":12: .*service: .*at least 1"),
        ('name = "a b"', r":10: routers\.auto\.shared\.name: "),
    ],
)
def test_bad_shared_tables_fail_at_load_with_their_line(lines: str, message: str) -> None:
    text = SHARED.replace('name = "support"\n', "") + ("" if "name =" in lines else 'name = "s"\n')
    with pytest.raises(ConfigError, match=r"^pickllm\.toml" + message) as error:
        GatewayConfig.from_toml(text + lines + "\n", "pickllm.toml")
    assert "hunter2" not in str(error.value)


def test_a_bad_shared_url_fails_at_load_without_its_password() -> None:
    text = SHARED.replace("redis://app:hunter2@", "http://app:hunter2@")
    with pytest.raises(ConfigError) as error:
        GatewayConfig.from_toml(text, "pickllm.toml")
    assert str(error.value) == (
        "pickllm.toml:9: routers.auto.shared.url: url must start with redis://, rediss:// or "
        "unix://"
    )
    inline = MODELS + '[routers.auto]\nmodels = ["small"]\nshared = { name = "s" }\n'
    with pytest.raises(ConfigError, match=r"^pickllm\.toml:8: routers\.auto\.shared\.url: Field"):
        GatewayConfig.from_toml(inline, "pickllm.toml")


def test_a_good_shared_table_builds_its_redis_state() -> None:
    text = (
        SHARED + 'sentinels = ["127.0.0.1:26379", "127.0.0.1:26380"]\nbudget_outage = "fail_open"\n'
    )
    state = GatewayConfig.from_toml(text).routers["auto"].build_shared()
    assert state is not None
    assert state.sentinels == ("127.0.0.1:26379", "127.0.0.1:26380")
    assert (state.name, state.budget_outage) == ("support", "fail_open")
    assert "hunter2" not in repr(state)


# ==================== warm_start ====================

WARM = MODELS + '[routers.auto]\nmodels = ["small", "large"]\n'


def test_warm_start_means_load_with_the_config() -> None:
    config = GatewayConfig.from_toml(
        WARM + "warm_start = { weight = 5, means = { math = { small = [0.2, 50], "
        "large = [0.9, 3, 0.001, 1.5] } } }\n"
    )
    warm = config.routers["auto"].warm_start
    assert warm is not None
    assert warm.weight == 5
    seeds = warm.load(["small", "large"], Path.cwd())
    assert warm.means_of(seeds) == {
        "math": {"small": (0.2, 50, 0.0, 0.0), "large": (0.9, 3, 0.001, 1.5)}
    }


def test_warm_start_path_is_read_next_to_the_config(tmp_path: Path) -> None:
    rows = ["sample_id,prompt,eval_name,small,small|total_cost,large,large|total_cost"]
    rows += [f"q{i},p,code,0.0,0.0001,1.0,0.002" for i in range(4)]
    (tmp_path / "bench.csv").write_text("\n".join(rows) + "\n")
    path = tmp_path / "pickllm.toml"
    path.write_text(WARM + '[routers.auto.warm_start]\npath = "bench.csv"\n')
    warm = load_config(path).routers["auto"].warm_start
    assert warm is not None
    seeds = warm.load(["small", "large"], Path("/nowhere"))  # read at load time, kept
    assert warm.means_of(seeds) == {
        "code": {"small": (0.0, 4, 0.0001, 0.0), "large": (1.0, 4, 0.002, 0.0)}
    }


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("warm_start = { }", "give either path (RouterBench files) or means"),
        (
            'warm_start = { path = "a.csv", means = { m = { small = [0.5, 2] } } }',
            "give either path",
        ),
        (
            "warm_start = { means = { m = { small = [1.5, 2] } } }",
            "mean accuracy must be in [0, 1]",
        ),
        ("warm_start = { means = { m = { small = [0.5, -2] } } }", "count must be an int >= 1"),
        ("warm_start = { means = { m = { small = [0.5, 2.5] } } }", "count must be an int >= 1"),
        ("warm_start = { means = { m = { small = [0.5] } } }", "expected (accuracy, count)"),
        (
            "warm_start = { means = { m = { tiny = [0.5, 2] } } }",
            "outside the router's pool: ['tiny']",
        ),
        ("warm_start = { means = { m = { small = [0.5, 2, -1.0, 0.0] } } }", "mean cost must be"),
        ('warm_start = { path = "absent.csv" }', "no such file"),
        (
            'shared = { url = "redis://127.0.0.1:1", name = "auto" }\n'
            "warm_start = { means = { m = { small = [0.5, 2] } } }",
            "not with shared",
        ),
    ],
)
def test_bad_warm_starts_name_the_key_and_line(extra: str, message: str, tmp_path: Path) -> None:
    line = WARM.count("\n") + extra.count("\n") + 1
    with pytest.raises(ConfigError) as caught:
        GatewayConfig.from_toml(WARM + extra + "\n", "pickllm.toml", base=tmp_path)
    text = str(caught.value)
    assert text.startswith(f"pickllm.toml:{line}: routers.auto.warm_start"), text
    assert message in text, text


def test_a_bad_warm_start_weight_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"pickllm.toml:8: routers.auto.warm_start.weight"):
        GatewayConfig.from_toml(
            WARM + "warm_start = { weight = 0, means = { m = { small = [0.5, 2] } } }\n",
            "pickllm.toml",
        )


# ==================== The delayed-feedback store ====================


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def applied() -> list[tuple[int, float | None, Outcome]]:
    return []


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(applied: list[tuple[int, float | None, Outcome]], clock: Clock) -> FeedbackStore:
    def settle(pending: Pending, accuracy: float | None, outcome: Outcome) -> None:
        applied.append((pending.decision.id, accuracy, outcome))

    return FeedbackStore(settle, clock=clock, remember=3)


def decision(n: int) -> Decision:
    return Decision(n, "small", 0.5, "default")


def answer(store: FeedbackStore, gid: str, timeout: float = 10.0) -> None:
    store.answered(gid, cost=0.01, latency=0.5, timeout=timeout, default_accuracy=0.25)


def test_feedback_settles_once(store: FeedbackStore, applied: list[object]) -> None:
    store.open("a", "auto", decision(1))
    answer(store, "a")
    store.feedback("a", 1.0)
    with pytest.raises(DecisionSettledError):
        store.feedback("a", 0.0)
    assert applied == [(1, 1.0, "feedback")]
    assert len(store) == 0


def test_feedback_during_the_answer_waits_for_its_end(
    store: FeedbackStore, applied: list[object]
) -> None:
    store.open("a", "auto", decision(1))
    store.feedback("a", 0.75)
    assert applied == []
    with pytest.raises(DecisionSettledError):
        store.feedback("a", 0.5)
    answer(store, "a")
    assert applied == [(1, 0.75, "feedback")]


def test_deadline_applies_the_default_accuracy(
    store: FeedbackStore, applied: list[object], clock: Clock
) -> None:
    store.open("a", "auto", decision(1))
    store.open("b", "auto", decision(2))
    answer(store, "a", timeout=5.0)
    answer(store, "b", timeout=20.0)
    clock.now = 4.999
    assert store.expire() == 0
    clock.now = 5.0
    assert store.expire() == 1
    assert store.next_deadline() == 20.0
    assert applied == [(1, 0.25, "expired")]
    with pytest.raises(DecisionExpiredError, match="default_accuracy"):
        store.feedback("a", 1.0)
    store.feedback("b", 1.0)
    clock.now = 30.0
    assert store.expire() == 0  # b was settled by its feedback: its deadline does nothing
    assert applied == [(1, 0.25, "expired"), (2, 1.0, "feedback")]


def test_cancelled_and_unknown(store: FeedbackStore, applied: list[object]) -> None:
    store.open("a", "auto", decision(1))
    store.cancel("a")
    store.cancel("a")  # a second cancel changes nothing
    with pytest.raises(DecisionCancelledError):
        store.feedback("a", 1.0)
    with pytest.raises(UnknownDecisionError) as caught:
        store.feedback("nope", 1.0)
    assert isinstance(caught.value, DecisionError)
    assert caught.value.status == 404
    assert applied == [(1, None, "cancelled")]


def test_settled_ids_are_remembered_within_a_bound(store: FeedbackStore) -> None:
    for n in range(5):
        store.open(f"d{n}", "auto", decision(n))
        store.cancel(f"d{n}")
    with pytest.raises(DecisionCancelledError):
        store.feedback("d4", 1.0)
    with pytest.raises(UnknownDecisionError):  # forgotten: remember=3
        store.feedback("d0", 1.0)


def test_shutdown_settles_everything_once(store: FeedbackStore, applied: list[object]) -> None:
    store.open("a", "auto", decision(1))
    store.open("b", "auto", decision(2))
    answer(store, "b")
    store.settle_all()
    assert sorted(applied) == [(1, None, "cancelled"), (2, 0.25, "expired")]
    assert len(store) == 0
    assert store.expire() == 0
