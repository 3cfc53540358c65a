"""One default learner everywhere: Router(), the gateway's config, the LiteLLM plug-in's routers
and `pickllm replay` all take it from pickllm.default_policy()."""

from __future__ import annotations

import json

import pickllm
from pickllm import UCB, Router, default_policy
from pickllm.cli import _learners, build_parser
from pickllm.gateway.config import GatewayConfig
from pickllm.replay.experiment import default_learner, default_learners

MODELS = """
[models.small]
base_url = "http://127.0.0.1:8080/v1"
[models.large]
base_url = "http://127.0.0.1:8081/v1"
"""


def test_the_default_is_ucb_and_exported() -> None:
    assert default_policy() == UCB()
    assert pickllm.default_policy is default_policy
    assert "default_policy" in pickllm.__all__


def test_router_runs_the_default() -> None:
    assert Router(["a", "b"]).policy == default_policy()


def test_a_gateway_router_without_policy_runs_the_default() -> None:
    config = GatewayConfig.from_toml(MODELS + '[routers.auto]\nmodels = ["small", "large"]\n')
    assert config.routers["auto"].policy.kind == "ucb"
    assert config.routers["auto"].policy.build() == default_policy()


def test_a_gateway_policy_without_kind_configures_the_default() -> None:
    text = MODELS + '[routers.auto]\nmodels = ["small"]\npolicy = { exploration = 1.0 }\n'
    policy = GatewayConfig.from_toml(text).routers["auto"].policy.build()
    assert policy == UCB(exploration=1.0)


def test_every_policy_kind_is_accepted_by_the_gateway() -> None:
    for cls in pickllm.config.POLICIES:
        kind = cls.model_fields["kind"].default
        text = MODELS + f'[routers.auto]\nmodels = ["small"]\npolicy = {{ kind = "{kind}" }}\n'
        assert GatewayConfig.from_toml(text).routers["auto"].policy.build() == cls()


def test_replay_shows_the_default_learner_by_default() -> None:
    args = build_parser().parse_args(["replay"])
    learners = _learners(args)
    assert learners[0] == default_learner()
    assert learners[0].label.endswith("(default)")
    assert learners[0].spec["policy"] == default_policy()._core_dict()
    assert default_learners()[0] == default_learner()


def test_replay_runs_the_default_once_when_its_family_is_named_too() -> None:
    args = build_parser().parse_args(["replay", "--policies", "default,ucb"])
    specs = [json.dumps(s.spec, sort_keys=True) for s in _learners(args)]
    assert len(specs) == len(set(specs)) == 4  # UCB's four settings, UCB() among them once
    assert _learners(args)[0].label.endswith("(default)")
