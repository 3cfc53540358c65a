"""`ContextStats`: how many contexts a router holds, its bound, and how many it let go."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pickllm.contexts import PromptContextsStats

__all__ = ["DEFAULT_MAX_CONTEXTS", "MAX_CONTEXTS", "ContextStats"]

#: The default bound of ``Router(max_contexts=...)``: a million learned contexts (a few hundred
#: bytes each, see docs/performance.md), plus as many that were selected but never learned.
DEFAULT_MAX_CONTEXTS = 1_000_000

#: The largest bound the core accepts (both lists together still fit 32-bit slot numbers).
MAX_CONTEXTS = 2**31


@dataclass(frozen=True, slots=True)
class ContextStats:
    """What :meth:`pickllm.Router.stats` reports.

    A context has *learned* once it received feedback. With ``max_contexts`` set, at most that
    many learned contexts are kept, the least recently learned evicted first (its learning is
    lost); apart from them, at most ``max_contexts`` contexts that were selected but never
    learned are kept, the oldest dropped first (nothing is lost: their learner was the prior).
    Only feedback orders learned contexts, so selections never evict one.

    Attributes:
        contexts: contexts held (``learned + unlearned``).
        learned: contexts that have learned.
        unlearned: contexts selected but never learned.
        evicted: learned contexts evicted since the router was created (snapshots keep it).
        dropped: unlearned contexts dropped.
        max_contexts: the bound of each of the two kinds (None: unbounded).
        prompt_contexts: with ``Router(contexts=PromptContexts(...))``, the warm-up and each
            discovered cluster's size and characteristic n-grams; None otherwise.

    >>> from pickllm import Router
    >>> router = Router(["a", "b"], seed=1, max_contexts=2)
    >>> for user in ["ann", "bob", "cid"]:
    ...     d = router.select(context=user)
    ...     _ = router.feedback(d, accuracy=1.0)
    >>> router.stats()
    ContextStats(contexts=2, learned=2, unlearned=0, evicted=1, dropped=0, max_contexts=2)
    >>> router.contexts()  # least recently learned first: "ann" was evicted
    ['bob', 'cid']
    """

    contexts: int
    learned: int
    unlearned: int
    evicted: int
    dropped: int
    max_contexts: int | None
    prompt_contexts: PromptContextsStats | None = field(default=None, repr=False)
