"""What can be evaluated: a fixed model of the pool, or a learner (any pickllm policy).

>>> parse_candidate("gpt-4o", ["gpt-4o", "small"])
FixedModel(model='gpt-4o')
>>> parse_candidate("learning_automaton", ["gpt-4o", "small"])
LearningAutomaton(learning_rate=0.1, threshold=0.99, lock=True)
>>> parse_candidate('{"kind": "q_learning", "epsilon": 0.1}', ["a"]).epsilon
0.1
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from pickllm.config import Policy, build_policy, policy_kinds
from pickllm.errors import ConfigError

__all__ = ["Candidate", "FixedModel", "builtin_policies", "label", "parse_candidate"]


@dataclass(frozen=True)
class FixedModel:
    """Always ``model``; where a decision did not allow it, what the logger did."""

    model: str


#: A policy to evaluate off-policy.
Candidate = FixedModel | Policy


def builtin_policies() -> list[Policy]:
    """Each built-in learner at its default settings."""
    return [cls() for cls in policy_kinds().values()]


def label(candidate: Candidate) -> str:
    """A model's name; a learner's kind with the settings that differ from its defaults.

    >>> from pickllm import QLearning
    >>> label(FixedModel("big")), label(QLearning(epsilon=0.1))
    ('big', 'q_learning(epsilon=0.1)')
    """
    if isinstance(candidate, FixedModel):
        return candidate.model
    default = type(candidate)()
    changed = [
        f"{name}={value!r}"
        for name, value in candidate.model_dump().items()
        if value != getattr(default, name)
    ]
    return candidate.kind + (f"({', '.join(changed)})" if changed else "")


def parse_candidate(text: str, models: Sequence[str]) -> Candidate:
    """A model name of the pool, a learner kind (default settings), or a learner as JSON with
    its ``kind`` and settings."""
    text = text.strip()
    if text in models:
        return FixedModel(text)
    classes = policy_kinds()
    if text in classes:
        return classes[text]()
    if text.startswith("{"):
        try:
            fields = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(f"--policy: not valid JSON ({error.msg}): {text!r}") from None
        kind = fields.pop("kind", None) if isinstance(fields, dict) else None
        if kind not in classes:
            raise ConfigError(f"--policy: JSON needs a kind among {sorted(classes)}: {text!r}")
        try:
            return build_policy(kind, fields)
        except ConfigError as error:
            raise ConfigError(f"--policy: {error}") from None
    raise ConfigError(
        f"--policy {text!r} is neither a model of the log ({', '.join(models)}) nor a learner "
        f"({', '.join(sorted(classes))}) nor a learner as JSON"
    )
