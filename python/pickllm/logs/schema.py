"""The decision log's schema, version 1: JSON Lines, one object per line, three record types.

Every record has ``schema`` (this version, an int), ``type`` and ``router`` (an id drawn when the
log is opened, so the decision ids of several routers or processes sharing one folder never
collide). Files are append-only; a decision's outcome arrives as a later ``feedback`` record with
the same ``router`` and ``id``.

``type: "router"``, first in every file:
    ``time`` (Unix seconds), ``models`` (the pool, in order), ``policy`` and ``reward`` (the
    learner and reward configuration, as ``Policy.model_dump()`` / ``Reward.model_dump()``).

``type: "decision"``, one per :meth:`Router.select` (``route``/``aroute`` select through it):
    ``time``, ``id`` (the decision id), ``context``, ``model`` (chosen), ``probability`` (the exact
    probability it was chosen with), ``probabilities`` (the learner's distribution over the whole
    pool at that moment, one number per model in pool order), ``allowed`` (the models it could
    choose from, in pool order), and ``prompt`` only when the log was opened with
    ``prompts=True`` (text or chat messages, for routed queries).

``type: "feedback"``, one per :meth:`Router.feedback` that was applied:
    ``time``, ``id``, ``accuracy``, ``cost`` (USD), ``latency`` (seconds), ``reward`` (in [0, 1],
    what the learner received).

A reader must ignore fields it does not know; a record with a larger ``schema`` is refused.

Within ``allowed``, learners restrict their distribution to the subset: the automaton renormalizes
``probabilities`` over it (uniform if it holds no mass), Q-learning explores uniformly inside it.
``probability`` is always exact; ``probabilities`` is exact when every model was allowed.
"""

from __future__ import annotations

from typing import Final

__all__ = ["FEEDBACK_FIELDS", "SCHEMA_VERSION"]

#: The version written in every record's ``schema`` field.
SCHEMA_VERSION: Final = 1

#: The outcome fields of a feedback record, in the order they are written.
FEEDBACK_FIELDS: Final = ("accuracy", "cost", "latency", "reward")
