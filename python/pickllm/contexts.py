"""Contexts discovered from prompts: :class:`PromptContexts` and the router's mapper state.

Traffic without a context label gets one learner, which can only find the single best model
overall. With ``Router(models, contexts=PromptContexts())`` the router collects the first
``warmup`` prompts (routing them all in one context meanwhile), fits a clustering on them in the
Rust core (hashed word n-gram TF-IDF, spherical k-means, ``k`` chosen by silhouette; see
docs/contexts.md), credits the feedback of the warm-up decisions to their clusters, forgets the
warm-up prompts, and from then on routes each prompt in the context of its nearest cluster,
``cluster-<i>``. Everything is a function of the ordered events: two routers fed the same
selections and feedback in the same order fit the same clusters and assign alike. With shared
state, a fit is only proposed: the replicas adopt the one mapper the shared state publishes
(:mod:`pickllm.state.replica`, docs/contexts.md).
"""

from __future__ import annotations

import json
import logging
import struct
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import Field

from pickllm import _core
from pickllm.config import _Config
from pickllm.errors import ArgumentTypeError, PromptError, SnapshotError

if TYPE_CHECKING:
    from pickllm._core import Decision, RouterCore

__all__ = ["ClusterStats", "PromptContexts", "PromptContextsStats"]

_T = TypeVar("_T")

logger = logging.getLogger("pickllm.contexts")

#: The most clusters the core allows (``max_clusters`` is at most this).
MAX_CLUSTERS = 64


class PromptContexts(_Config):
    """Discover contexts from prompts (see :mod:`pickllm.contexts` and docs/contexts.md).

    Args:
        warmup: prompts collected before the clustering is fitted (10 to 10,000); until then
            one context (the router's default, or the explicit one) is used.
        max_clusters: the largest number of clusters tried (1 to 64; 1: no clustering).
        min_silhouette: below this best mean silhouette (cosine distance, in [-1, 1]) the
            warm-up prompts count as unstructured and form one cluster.
        seed: seeds the k-means++ draws; fixed by default so that every router fed the same
            prompts fits the same clusters.
        combine: when ``select``/``route`` also get an explicit context, route in
            ``"<context>/cluster-<i>"`` instead of the explicit context alone.
        max_prompt_bytes: a longer prompt (UTF-8) is refused with :class:`PromptError` before
            anything is selected.
        background_fit: fit in a worker thread instead of on the selection that completes the
            warm-up, so that no selection waits for it (``pickllm serve`` does): selections
            keep the warm-up context until the fitted clusters are installed. When that happens
            depends on timing, so a seeded run is reproducible only with the inline fit (the
            default).

    >>> from pickllm import PromptContexts, Router
    >>> router = Router(["small", "large"], seed=1, contexts=PromptContexts(warmup=10))
    >>> router.select(prompt="Write a python function to sort a list").context
    'default'
    """

    warmup: int = Field(default=200, ge=10, le=10_000)
    max_clusters: int = Field(default=16, ge=1, le=MAX_CLUSTERS)
    min_silhouette: float = Field(default=0.05, ge=-1.0, le=1.0)
    seed: int = Field(default=0, ge=0, lt=2**64)
    combine: bool = False
    max_prompt_bytes: int = Field(default=1 << 20, ge=1)
    background_fit: bool = False

    def _core_dict(self) -> dict[str, Any]:
        return self.model_dump()


@dataclass(frozen=True, slots=True)
class ClusterStats:
    """One discovered cluster: its context name, how many warm-up prompts it drew and its most
    characteristic n-grams (highest centroid weight above the other clusters'), best first."""

    context: str
    size: int
    terms: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PromptContextsStats:
    """The prompt mapper in :meth:`pickllm.Router.stats` (``stats().prompt_contexts``).

    Attributes:
        fitted: whether the warm-up is over and clusters are in use.
        warmup_prompts: prompts collected so far (``warmup`` once fitted).
        silhouette: the chosen clustering's mean silhouette (None before the fit).
        clusters: one entry per cluster, largest first (empty before the fit).
        fitting: the warm-up is complete and its fit under way: running in the background
            (``PromptContexts(background_fit=True)``) or, with shared state, waiting for the
            shared state to publish a mapper.
        fit_error: why the fit failed, if it did: the router then keeps routing in the warm-up
            context (the fit is a function of the warm-up prompts, so it is not retried).
    """

    fitted: bool
    warmup_prompts: int
    silhouette: float | None
    clusters: tuple[ClusterStats, ...]
    fitting: bool = False
    fit_error: str | None = None

    @property
    def state(self) -> str:
        """``"warmup"``, ``"fitting"``, ``"fitted"`` or ``"failed"``."""
        if self.fitted:
            return "fitted"
        if self.fit_error is not None:
            return "failed"
        return "fitting" if self.fitting else "warmup"


def cluster_context(cluster: int, label: str | None) -> str:
    """The context name of ``cluster``, within ``label`` when combined."""
    return f"cluster-{cluster}" if label is None else f"{label}/cluster-{cluster}"


def prompt_text(prompt: object, max_bytes: int) -> str:
    """The text the mapper reads: a string, or the contents of chat messages joined by
    newlines. Empty, oversized or mistyped prompts raise before anything is selected."""
    if isinstance(prompt, str):
        text = prompt
    elif isinstance(prompt, Sequence) and not isinstance(prompt, bytes | bytearray):
        parts = []
        for message in prompt:
            content = message.get("content") if isinstance(message, Mapping) else None
            if not isinstance(content, str):
                raise ArgumentTypeError(
                    "prompt messages must be mappings with a str 'content', "
                    f"got {type(message).__name__}"
                )
            parts.append(content)
        text = "\n".join(parts)
    else:
        raise ArgumentTypeError(
            f"prompt must be a str or a list of chat messages, got {type(prompt).__name__}"
        )
    if not text.strip():
        raise PromptError("prompt must contain text to assign it a context, got an empty prompt")
    size = len(text)
    if not text.isascii():
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError as error:  # a lone surrogate, which JSON allows ("\ud800")
            raise PromptError(
                f"prompt holds a lone surrogate at index {error.start}; not valid Unicode"
            ) from None
    if size > max_bytes:
        raise PromptError(
            f"prompt is longer than max_prompt_bytes={max_bytes} bytes of UTF-8; raise "
            "PromptContexts(max_prompt_bytes=...) to accept it"
        )
    return text


# A snapshot with the mapper attached, as the core frames it (`Capture::write_with`).
_MAGIC = b"PICKLLMC"
_VERSION = 1
_HEADER = struct.Struct("<8sIQQ")


def fit_prompts(prompts: list[str], config: PromptContexts) -> _core.PromptContextsCore:
    """Fit the mapper on the warm-up ``prompts`` (in the Rust core, without the GIL). The one
    place a fit happens, inline or in the background; tests replace it to hold or fail a fit
    at a known point."""
    return _core.PromptContextsCore.fit(
        prompts, config.max_clusters, config.min_silhouette, config.seed
    )


class Mapper:
    """A router's prompt mapper: the warm-up, then the fitted clusters. Thread-safe.

    The lock orders warm-up records, the fit's installation and feedback of warm-up decisions
    against each other and against snapshots; assignment after the fit takes no lock (the
    fitted core is immutable). An inline fit runs under the lock; a background fit
    (``background_fit``) runs outside it, on the warm-up prompts, which nothing changes while
    it runs, and takes the lock only to install what it fitted."""

    def __init__(self, config: PromptContexts) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._fitted: _core.PromptContextsCore | None = None
        # With shared state (see ``share``): the fit that completed the warm-up, proposed to the
        # other replicas; adopted only once the shared state publishes a mapper (this one or
        # another replica's), so that every replica assigns with the same one.
        self._shared = False
        self._proposal: bytes | None = None
        self._core: RouterCore | None = None
        # Warm-up: prompts in order, decision id -> (prompt index, label), and the feedback of
        # warm-up decisions in order (prompt index, label, model, accuracy, cost, latency, p).
        self._prompts: list[str] = []
        self._warm: dict[int, tuple[int, str | None]] = {}
        self._events: list[tuple[int, str | None, str, float, float, float, float]] = []
        # After the fit: warm-up decisions still awaiting feedback -> their cluster's context.
        self._late: dict[int, str] = {}
        # The background fit running, and why the fit failed (it is then not retried: it is a
        # function of the warm-up prompts and would fail alike).
        self._fitting: threading.Thread | None = None
        self._fit_error: str | None = None

    @property
    def fitted(self) -> _core.PromptContextsCore | None:
        return self._fitted

    @property
    def state(self) -> str:
        """``"warmup"``, ``"fitting"``, ``"fitted"`` or ``"failed"`` (see
        :attr:`PromptContextsStats.state`), without building the clusters' stats."""
        if self._fitted is not None:
            return "fitted"
        if self._fit_error is not None:
            return "failed"
        under_way = self._fitting is not None or self._proposal is not None
        return "fitting" if under_way else "warmup"

    def context(self, text: str, label: str | None) -> str:
        """The context of ``text``; only called once fitted (the fitted core never goes away)."""
        fitted = self._fitted
        if fitted is None:
            raise RuntimeError("pickllm internal error: prompt contexts used before the fit")
        return cluster_context(fitted.assign(text), label)

    def warm_select(
        self,
        core: RouterCore,
        select: Callable[..., Decision],
        text: str,
        label: str | None,
        kwargs: dict[str, Any],
        index_holder: list[int] | None,
    ) -> Decision:
        """Select during the warm-up (in ``label``, or the default context) and record the
        prompt; the prompt that completes the warm-up starts the fit. ``index_holder``
        carries one route call's prompt index across its attempts, so a prompt counts once."""
        with self._lock:
            fitted = self._fitted
            if fitted is not None:  # fitted while this call waited for the lock
                return select(cluster_context(fitted.assign(text), label), **kwargs)
            decision = select(label, **kwargs)
            done = (
                self._proposal is not None
                or self._fitting is not None
                or self._fit_error is not None
            )
            if done and not index_holder:
                # Warm-up done, the fit runs, failed or awaits publication: routed as during
                # the warm-up, but neither kept nor credited later (prompts stay bounded by the
                # warm-up).
                return decision
            if index_holder:
                index = index_holder[0]
            else:
                index = len(self._prompts)
                self._prompts.append(text)
                if index_holder is not None:
                    index_holder.append(index)
            self._warm[decision.id] = (index, label)
            if len(self._prompts) >= self.config.warmup and not done:
                self._fit(core)
            return decision

    def _fit(self, core: RouterCore) -> None:
        """Fit, inline or in a supervised worker thread; then install (see ``_install``)."""
        if self.config.background_fit:
            self._fitting = threading.Thread(
                target=self._fit_in_background,
                args=(core, list(self._prompts)),
                name="pickllm-prompt-contexts-fit",
                daemon=True,
            )
            self._fitting.start()
            return
        try:
            fitted = fit_prompts(self._prompts, self.config)
        except Exception as error:  # shown in stats and logged; the selection stands
            self._failed(error)
            return
        self._install(core, fitted)

    def _fit_in_background(self, core: RouterCore, prompts: list[str]) -> None:
        """The background fit: whatever it raises is recorded, never lost with the thread."""
        # ``_fitting`` is cleared last, under the lock: until the fit is installed (or its
        # failure recorded) the state stays "fitting" and ``wait_fit`` waits, never "warmup".
        try:
            fitted: _core.PromptContextsCore | None = fit_prompts(prompts, self.config)
            failure: Exception | None = None
        except Exception as error:
            fitted, failure = None, error
        with self._lock:
            if fitted is not None and self._fitted is None:  # shared: one may have won
                try:
                    self._install(core, fitted)
                except Exception as error:
                    failure = error
            if failure is not None:
                self._failed(failure)
            self._fitting = None
        if fitted is not None and failure is None:
            logger.info(
                "pickllm: prompt contexts fitted in the background, %d clusters", len(fitted.sizes)
            )

    def _failed(self, error: Exception) -> None:
        self._fit_error = f"{type(error).__name__}: {error}"
        logger.error(
            "pickllm: the prompt-contexts fit failed, routing stays in the warm-up context: %s",
            self._fit_error,
        )

    def _install(self, core: RouterCore, fitted: _core.PromptContextsCore) -> None:
        """Alone, adopt the fit at once; shared, propose it (see ``share``)."""
        if self._shared:
            self._proposal = fitted.to_bytes()
        else:
            self._adopt(core, fitted)

    def _adopt(self, core: RouterCore, fitted: _core.PromptContextsCore) -> None:
        """Use ``fitted`` from now on: credit the warm-up feedback to its clusters in its order
        (with shared state, as events published like any other), forget the prompts."""
        clusters = [fitted.assign(p) for p in self._prompts]
        for index, label, model, accuracy, cost, latency, probability in self._events:
            context = cluster_context(clusters[index], label)
            self._credit(core, context, model, accuracy, cost, latency, probability)
        self._late = {
            id_: cluster_context(clusters[index], label)
            for id_, (index, label) in self._warm.items()
        }
        self._prompts, self._warm, self._events = [], {}, []
        self._proposal = None
        self._fit_error = None
        self._fitted = fitted

    def wait_fit(self, timeout: float | None = None) -> bool:
        """Wait for a background fit to end (installed or failed); False if it still runs
        after ``timeout`` seconds."""
        thread = self._fitting
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    # ==================== Shared state ====================

    def share(self, core: RouterCore) -> None:
        """Fit for the replicas sharing the router's state: a fit is only proposed, and the
        shared state adopts the mapper it publishes (see :mod:`pickllm.state.replica`)."""
        with self._lock:
            self._shared = True
            self._core = core

    def offer(self) -> bytes | None:
        """What this replica would publish: the mapper in use, or else its proposal."""
        with self._lock:
            return self._proposal if self._fitted is None else self._fitted.to_bytes()

    def adopt(self, blob: bytes) -> None:
        """Assign with the published mapper ``blob`` from now on (a replica's own proposal,
        or another replica's, which this one's fit then lost to). A different mapper than the
        one in use comes only with a new epoch of the shared log, whose learned state the
        replica loads in the same step. Raises SnapshotError for invalid bytes."""
        with self._lock:
            if self._fitted is not None and self._fitted.to_bytes() == blob:
                return
            fitted = _core.PromptContextsCore.from_bytes(blob)
            if self._core is None:
                raise RuntimeError("pickllm internal error: adopt() before share()")
            self._adopt(self._core, fitted)

    def feedback(
        self,
        core: RouterCore,
        apply: Callable[[], float],
        decision: Decision,
        accuracy: float,
        cost: float,
        latency: float,
    ) -> float:
        """Apply ``decision``'s feedback, and record it (warm-up) or credit its cluster (a
        warm-up decision answered after the fit)."""
        with self._lock:
            reward = apply()
            id_ = decision.id
            if id_ in self._warm:
                index, label = self._warm.pop(id_)
                self._events.append(
                    (index, label, decision.model, accuracy, cost, latency, decision.probability)
                )
            elif id_ in self._late:
                context = self._late.pop(id_)
                args = (decision.model, accuracy, cost, latency, decision.probability)
                self._credit(core, context, *args)
            return reward

    def _credit(
        self,
        core: RouterCore,
        context: str,
        model: str,
        accuracy: float,
        cost: float,
        latency: float,
        probability: float,
    ) -> None:
        """Credit a warm-up decision's feedback, already learned in the warm-up context, to its
        cluster. Alone, the pooled evidence (the ``share`` prior) is not fed it a second time
        (``credit``); with shared state it is published as an observation, which every replica
        learns alike, pooled again (the shared log's events have no unpooled kind)."""
        if self._shared:
            core.observe(
                context,
                model,
                accuracy=accuracy,
                cost=cost,
                latency=latency,
                probability=probability,
            )
        else:
            core.credit(
                context,
                model,
                accuracy=accuracy,
                cost=cost,
                latency=latency,
                probability=probability,
            )

    def stats(self) -> PromptContextsStats:
        fitted = self._fitted
        if fitted is None:
            fitting = self.state == "fitting"
            return PromptContextsStats(
                False, len(self._prompts), None, (), fitting, self._fit_error
            )
        clusters = tuple(
            ClusterStats(cluster_context(i, None), size, tuple(terms))
            for i, (size, terms) in enumerate(zip(fitted.sizes, fitted.terms, strict=True))
        )
        return PromptContextsStats(True, fitted.prompts, fitted.silhouette, clusters)

    # ==================== Snapshots ====================

    def snapshot(self, core_snapshot: Callable[[tuple[bytes, bytes]], _T]) -> _T:
        """The router's snapshot with this mapper attached, taken under the lock so that the
        two agree. ``core_snapshot`` (the core's ``snapshot`` or ``write_snapshot``) frames the
        attachment ``(mapper state as JSON, fitted mapper bytes)`` after the core's snapshot
        without the interpreter: ``PICKLLMC``, version, both lengths, then the three parts (see
        ``Capture::write_with`` in rust/snapshot.rs; :func:`unwrap` reads it)."""
        with self._lock:
            state = {
                "config": self.config.model_dump(),
                "prompts": self._prompts,
                "warm": [[i, index, label] for i, (index, label) in self._warm.items()],
                "events": [list(event) for event in self._events],
                "late": [[i, context] for i, context in self._late.items()],
            }
            fitted = b"" if self._fitted is None else self._fitted.to_bytes()
            meta = json.dumps(state, separators=(",", ":")).encode()
            return core_snapshot((meta, fitted))


def is_wrapped(blob: bytes) -> bool:
    return blob[: len(_MAGIC)] == _MAGIC


def unwrap(blob: bytes) -> tuple[bytes, Mapper]:
    """The core snapshot and the mapper of a snapshot :meth:`Mapper.snapshot` wrote."""
    try:
        magic, version, inner_length, meta_length = _HEADER.unpack_from(blob)
    except struct.error:
        raise SnapshotError("invalid snapshot: truncated prompt-contexts header") from None
    if magic != _MAGIC or version != _VERSION:
        raise SnapshotError(
            f"invalid snapshot: prompt-contexts format {version}, this build reads {_VERSION}"
        )
    start = _HEADER.size
    if len(blob) < start + inner_length + meta_length:
        raise SnapshotError("invalid snapshot: truncated prompt-contexts snapshot")
    inner = blob[start : start + inner_length]
    meta = blob[start + inner_length : start + inner_length + meta_length]
    fitted = blob[start + inner_length + meta_length :]
    try:
        state = json.loads(meta)
        mapper = Mapper(PromptContexts(**state["config"]))
        mapper._prompts = [str(p) for p in state["prompts"]]
        mapper._warm = {int(i): (int(index), label) for i, index, label in state["warm"]}
        mapper._events = [
            (int(e[0]), e[1], str(e[2]), float(e[3]), float(e[4]), float(e[5]), float(e[6]))
            for e in state["events"]
        ]
        mapper._late = {int(i): str(context) for i, context in state["late"]}
    except (ValueError, TypeError, KeyError, IndexError) as error:
        raise SnapshotError(f"invalid snapshot: prompt-contexts state ({error})") from None
    if fitted:
        mapper._fitted = _core.PromptContextsCore.from_bytes(fitted)
    n = len(mapper._prompts)
    warm_indices = [index for index, _ in mapper._warm.values()]
    consistent = (
        not (mapper._prompts or mapper._warm or mapper._events)
        if mapper._fitted is not None
        else not mapper._late
        and n <= mapper.config.warmup  # equal: a shared fit awaiting publication
        and all(0 <= i < n for i in warm_indices + [e[0] for e in mapper._events])
    )
    if not consistent:
        raise SnapshotError("invalid snapshot: inconsistent prompt-contexts state")
    return inner, mapper
