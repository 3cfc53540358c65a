"""Off-policy evaluation: what a candidate policy would have earned on logged traffic.

:func:`evaluate` reads a decision log (``Router(..., decision_log=PATH)``) and estimates each
candidate's mean reward, accuracy, cost and latency with 95% intervals: fixed models with IPS,
self-normalized IPS and doubly robust estimators, learners with rejection-sampling replay.
``pickllm evaluate --log PATH`` is the same from the command line. See docs/evaluation.md.
"""

from __future__ import annotations

from pickllm.evaluate.candidates import Candidate, FixedModel, builtin_policies, parse_candidate
from pickllm.evaluate.estimators import Estimate
from pickllm.evaluate.evaluation import Evaluation, PolicyEstimate, evaluate
from pickllm.evaluate.table import format_evaluation

__all__ = [
    "Candidate",
    "Estimate",
    "Evaluation",
    "FixedModel",
    "PolicyEstimate",
    "builtin_policies",
    "evaluate",
    "format_evaluation",
    "parse_candidate",
]
