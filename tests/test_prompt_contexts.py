"""Contexts discovered from prompts: PromptContexts, the warm-up and its replay, snapshots,
determinism, bad input, and routers that must find each task's best model without labels."""

from __future__ import annotations

import pickle
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from model_farm import answer, model_farm
from pickllm import (
    UCB,
    ArgumentTypeError,
    ConfigError,
    PromptContexts,
    PromptError,
    Reward,
    Router,
    SnapshotError,
)
from pickllm._core import PromptContextsCore
from pickllm.backends import OpenAICompatible
from pickllm.models import Model
from pickllm.scorers import MultipleChoice

TASKS = (
    "write a python function that returns",
    "what is the derivative of the polynomial",
    "which painter made the portrait of",
)
FILLER = ("apple", "river", "seven", "green", "table", "cloud", "stone", "music", "north", "paper")
MODELS = ("a", "b", "c")
ACCURACY_ONLY = Reward(accuracy=1.0, cost=0.0, latency=0.0)


def prompt(i: int, task: int) -> str:
    """Task ``task``'s fixed words plus two fillers every task shares: the task is the only
    structure, so a correct clustering is exactly the tasks."""
    return f"{TASKS[task]} {FILLER[(3 * i + task) % 10]} {FILLER[(7 * i + 2 * task + 1) % 10]}"


def stream(n: int) -> Iterator[tuple[str, int]]:
    """``n`` queries, the tasks interleaved."""
    for i in range(n):
        yield prompt(i // 3, i % 3), i % 3


def router(warmup: int = 30, **options: object) -> Router:
    # UCB without sharing, exploration floor or change detector: its margins below follow from
    # its index alone.
    return Router(
        list(MODELS),
        policy=UCB(share=0.0, floor=0.0, detect_changes=None),
        reward=ACCURACY_ONLY,
        seed=11,
        contexts=PromptContexts(warmup=warmup, max_clusters=6, **options),  # type: ignore[arg-type]
    )


def wait_fit(r: Router) -> None:
    """Wait for a background fit to end (at once when there is none)."""
    mapper = r._mapper
    assert mapper is not None
    assert mapper.wait_fit(60), "the fit did not end"


def play(r: Router, queries: Iterator[tuple[str, int]]) -> list[tuple[str, str]]:
    """Select with each prompt, reward 1 for the task's best model (task t: model t), 0 else."""
    out = []
    for text, task in queries:
        d = r.select(prompt=text)
        r.feedback(d, accuracy=float(d.model == MODELS[task]))
        out.append((d.context, d.model))
    return out


# ==================== Configuration ====================


def test_defaults_and_validation() -> None:
    config = PromptContexts()
    assert (config.warmup, config.max_clusters, config.combine) == (200, 16, False)
    for bad in (
        {"warmup": 5},
        {"warmup": 30.0},
        {"max_clusters": 0},
        {"max_clusters": 65},
        {"warmup": 10_001},
        {"min_silhouette": 2.0},
        {"max_prompt_bytes": 0},
        {"seed": -1},
        {"unknown": 1},
    ):
        with pytest.raises(ConfigError):
            PromptContexts(**bad)  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match="contexts must be a PromptContexts"):
        Router(["a"], contexts="prompts")  # type: ignore[arg-type]


# ==================== The core mapper ====================


def test_core_finds_the_separable_tasks_and_one_cluster_when_told() -> None:
    prompts = [text for text, _ in stream(60)]
    mapper = PromptContextsCore.fit(prompts, 8, 0.05, 0)
    assert mapper.clusters == 3
    labels = [mapper.assign(p) for p in prompts]
    assert len({labels[t] for t in range(3)}) == 3
    assert all(labels[i] == labels[i % 3] for i in range(60))
    assert sorted(mapper.sizes) == [20, 20, 20]
    assert PromptContextsCore.fit(prompts, 1, 0.05, 0).clusters == 1
    # The same prompt again and again: no k separates anything.
    assert PromptContextsCore.fit(["same words"] * 30, 8, 0.05, 0).clusters == 1


def test_core_same_prompts_same_seed_same_bytes_and_round_trip() -> None:
    prompts = [text for text, _ in stream(45)]
    a, b = (PromptContextsCore.fit(prompts, 6, 0.05, 3) for _ in range(2))
    assert a.to_bytes() == b.to_bytes()
    back = PromptContextsCore.from_bytes(a.to_bytes())
    assert [back.assign(p) for p in prompts] == [a.assign(p) for p in prompts]
    with pytest.raises(SnapshotError):
        PromptContextsCore.from_bytes(a.to_bytes()[:-1])
    with pytest.raises(SnapshotError):
        PromptContextsCore.from_bytes(b"not a mapper")


# ==================== The router ====================


def test_warmup_uses_one_context_then_clusters_and_replays_its_feedback() -> None:
    r = router(warmup=30)
    played = play(r, stream(30))
    assert {context for context, _ in played} == {"default"}
    stats = r.stats().prompt_contexts
    assert stats is not None
    assert stats.fitted
    assert stats.warmup_prompts == 30
    assert [c.size for c in stats.clusters] == [10, 10, 10]
    assert all(c.terms for c in stats.clusters)
    # Each warm-up feedback was credited once to its prompt's cluster, in order.
    credited = sum(sum(r.feedback_counts(c.context).values()) for c in stats.clusters)
    assert credited == 30
    contexts = {context for context, _ in play(r, stream(30))}
    assert contexts == {"cluster-0", "cluster-1", "cluster-2"}


def test_clusters_find_each_tasks_best_model() -> None:
    """UCB1-tuned (exploration c = 0.5, no sharing) scores a model that always earned 0 after
    n tries at most sqrt(c ln t / n * 1/4) < 1 while t < e^8 = 2981, and the model that always
    earned 1 at least 1: once every model was tried in a cluster, only its best is picked. With
    pure clusters (each task in its own, checked) and under 2,981 feedbacks per cluster, every
    query of the last 300 goes to its task's best model. One global context cannot: each model
    is best for a third of the traffic."""
    r = router(warmup=60)
    played = play(r, stream(900))
    by_task: dict[int, set[str]] = {}
    for (context, _), (_, task) in zip(played[60:], stream(900), strict=False):
        by_task.setdefault(task, set()).add(context)
    assert all(len(contexts) == 1 for contexts in by_task.values()), by_task
    assert len(set.union(*by_task.values())) == 3
    late = list(zip(played, stream(900), strict=True))[-300:]
    assert all(model == MODELS[task] for (_, model), (_, task) in late)


def test_explicit_context_wins_or_combines() -> None:
    r = router(warmup=30)
    play(r, stream(30))
    assert r.select("billing", prompt=prompt(0, 1)).context == "billing"
    combined = router(warmup=30, combine=True)
    for text, _ in stream(30):
        assert combined.select("billing", prompt=text).context == "billing"
    context = combined.select("billing", prompt=prompt(0, 1)).context
    assert context.startswith("billing/cluster-")


def test_bad_prompts_are_refused_before_anything_is_selected() -> None:
    r = router(warmup=30, max_prompt_bytes=1000)
    with pytest.raises(PromptError, match="empty"):
        r.select(prompt="")
    with pytest.raises(PromptError, match="empty"):
        r.select(prompt="   \n")
    with pytest.raises(PromptError, match="max_prompt_bytes=1000"):
        r.select(prompt="word " * 300)
    with pytest.raises(ArgumentTypeError, match="prompt must be a str"):
        r.select(prompt=42)  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match="content"):
        r.select(prompt=[{"role": "user"}])  # type: ignore[list-item]
    assert r.pending == 0
    stats = r.stats().prompt_contexts
    assert stats is not None
    assert stats.warmup_prompts == 0
    # Chat messages are read as their contents.
    assert r.select(prompt=[{"role": "user", "content": prompt(0, 0)}]).context == "default"


def test_two_routers_fed_the_same_events_assign_identically() -> None:
    a, b = router(warmup=30), router(warmup=30)
    assert play(a, stream(120)) == play(b, stream(120))
    assert a.stats().prompt_contexts == b.stats().prompt_contexts


@pytest.mark.parametrize("cut", [20, 45])
def test_snapshot_restore_continues_identically(cut: int, tmp_path: Path) -> None:
    """Cut during the warm-up (20) or after the fit (45): the restored (unpickled, saved and
    loaded) router makes the same decisions as the original on the same events, and assigns
    prompts alike: ``save`` carries the mapper like ``snapshot``."""
    original = router(warmup=30)
    play(original, stream(cut))
    restored = Router.restore(original.snapshot())
    unpickled = pickle.loads(pickle.dumps(original))
    original.save(tmp_path / "router.pickllm")
    loaded = Router.load(tmp_path / "router.pickllm")
    assert (tmp_path / "router.pickllm").read_bytes() == original.snapshot()
    rest = list(stream(150))[cut:]
    expected = play(original, iter(rest))
    assert play(restored, iter(rest)) == expected
    assert play(unpickled, iter(rest)) == expected
    assert play(loaded, iter(rest)) == expected
    assert restored.stats().prompt_contexts == original.stats().prompt_contexts
    assert loaded.stats().prompt_contexts == original.stats().prompt_contexts


def test_warmup_prompts_are_forgotten_after_the_fit() -> None:
    r = router(warmup=30)
    marker = "zanzibarquux"
    r.select(prompt=f"{TASKS[0]} {marker}")
    assert marker.encode() in r.snapshot()  # kept during the warm-up only, to be replayed
    play(r, stream(29))
    assert r.stats().prompt_contexts.fitted  # type: ignore[union-attr]
    assert marker.encode() not in r.snapshot()


def test_warmup_decisions_answered_after_the_fit_credit_their_cluster() -> None:
    r = router(warmup=30)
    late = r.select(prompt=prompt(0, 2))
    play(r, stream(30))  # 29 more prompts complete the warm-up
    cluster = r.stats().prompt_contexts.clusters  # type: ignore[union-attr]
    before = {c.context: sum(r.feedback_counts(c.context).values()) for c in cluster}
    r.feedback(late, accuracy=1.0)
    after = {c.context: sum(r.feedback_counts(c.context).values()) for c in cluster}
    changed = [c for c in after if after[c] != before[c]]
    assert len(changed) == 1
    assert after[changed[0]] == before[changed[0]] + 1


@pytest.mark.parametrize("background", [False, True])
def test_a_shared_fit_is_proposed_and_used_only_once_adopted(background: bool) -> None:
    """With shared state the fit completing the warm-up (inline or in the background) is only
    proposed; routing stays in the warm-up context (past prompts neither kept nor credited)
    until the published mapper is adopted, which credits the warm-up feedback to its clusters.
    (Publication itself is tested with processes in tests/state/test_shared_prompt_contexts.py.)"""
    r = router(warmup=30, background_fit=background)
    mapper = r._mapper
    assert mapper is not None
    mapper.share(r._core)
    assert {context for context, _ in play(r, stream(40))} == {"default"}
    wait_fit(r)
    assert mapper.state == "fitting", "fitted, waiting for publication"
    offer = mapper.offer()
    assert mapper.fitted is None
    assert offer is not None
    stats = r.stats().prompt_contexts
    assert stats is not None
    assert stats.warmup_prompts == 30, "prompts past the warm-up are not kept"
    mapper.adopt(offer)
    assert mapper.fitted is not None
    assert mapper.offer() == offer
    clusters = [c for c in r.contexts() if c.startswith("cluster-")]
    credited = sum(sum(r.feedback_counts(c).values()) for c in clusters)
    assert credited == 30, "the warm-up's feedback, not the 10 routed while the fit waited"
    assert {context for context, _ in play(r, stream(3))} <= set(clusters)
    mapper.adopt(offer)  # adopting the mapper in use again changes nothing
    assert sum(sum(r.feedback_counts(c).values()) for c in clusters) == credited + 3
    with pytest.raises(SnapshotError):
        mapper.adopt(b"not a mapper")


def test_corrupted_snapshots_are_refused() -> None:
    r = router(warmup=30)
    play(r, stream(40))
    blob = r.snapshot()
    for bad in (blob[:20], blob[:-5], blob[:40] + b"\xff" + blob[41:]):
        with pytest.raises(SnapshotError):
            Router.restore(bad)


def test_a_prompt_without_contexts_names_the_fix(tmp_path: Path) -> None:
    """The core's select, bound on the instance for speed, refuses the prompt itself: with and
    without a decision log (whose wrapper passes it on), and through the class's method."""
    fix = r"Router\(models, contexts=PromptContexts\(\.\.\.\)\)"
    plain = Router(list(MODELS), seed=1)
    logged = Router(list(MODELS), seed=1, decision_log=tmp_path / "log")
    try:
        for router in (plain, logged):
            with pytest.raises(ConfigError, match=fix):
                router.select(prompt="Write a python function")
            with pytest.raises(ConfigError, match=fix):
                Router.select(router, "math", prompt=[{"role": "user", "content": "hi"}])
            assert router.select(prompt=None).context == "default"
            assert router.pending == 1  # the refused calls selected nothing
    finally:
        logged.close()


# ==================== route() ====================


def test_route_without_contexts_still_sends_its_prompt() -> None:
    """route() always has a prompt, for the model: a router without contexts routes it in the
    default context as before."""
    with model_farm({m: answer("The answer is A.") for m in MODELS}) as farm:
        backend = OpenAICompatible(base_url=farm.url, api_key="sk-test", timeout=5.0)
        try:
            r = Router([Model(m, backend=backend) for m in MODELS], seed=5)
            result = r.route("Which letter?", reference="A")
            assert result.decision.context == "default"
            assert sum(farm.calls.values()) == 1
        finally:
            backend.close()


def test_route_learns_each_tasks_model_from_prompts_alone() -> None:
    """Three scripted models answer "A", "B", "C"; task t's reference is model t's letter, so
    MultipleChoice grades exactly as in the test above, through real HTTP calls."""
    letters = {"a": "A", "b": "B", "c": "C"}
    behaviours = {m: answer(f"The answer is {letter}.") for m, letter in letters.items()}
    with model_farm(behaviours) as farm:
        backend = OpenAICompatible(base_url=farm.url, api_key="sk-test", timeout=5.0)
        try:
            r = Router(
                [Model(m, backend=backend) for m in MODELS],
                policy=UCB(share=0.0),
                reward=ACCURACY_ONLY,
                scorer=MultipleChoice(),
                seed=5,
                contexts=PromptContexts(warmup=30, max_clusters=6),
            )
            with pytest.raises(PromptError):
                r.route("")
            assert sum(farm.calls.values()) == 0
            picks: Counter[tuple[int, str]] = Counter()
            for i, (text, task) in enumerate(stream(150)):
                result = r.route(text, reference=letters[MODELS[task]])
                if i >= 120:
                    picks[task, result.model] += 1
            assert picks == Counter({(0, "a"): 10, (1, "b"): 10, (2, "c"): 10})
            stats = r.stats().prompt_contexts
            assert stats is not None
            assert len(stats.clusters) == 3
        finally:
            backend.close()


@pytest.mark.parametrize("background", [False, True])
def test_threads_racing_through_the_fit_credit_every_feedback_once(background: bool) -> None:
    """Four threads select and give feedback at once across the end of the warm-up. Whatever
    the interleaving, exactly the first 30 prompts are selected in the default context (and,
    with the fit in the background, those routed while it ran), and every other feedback ends
    up credited once to a cluster: replayed at the fit, credited on arrival for a warm-up
    decision answered after it, or learned there directly."""
    r = router(warmup=30, background_fit=background)
    queries = list(stream(120))

    def work(part: int) -> None:
        for text, task in queries[part::4]:
            d = r.select(prompt=text)
            r.feedback(d, accuracy=float(d.model == MODELS[task]))

    threads = [threading.Thread(target=work, args=(part,)) for part in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wait_fit(r)
    stats = r.stats().prompt_contexts
    assert stats is not None
    assert stats.fitted
    during_fit = sum(r.feedback_counts("default").values()) - 30
    assert during_fit >= 0 if background else during_fit == 0
    credited = sum(sum(r.feedback_counts(c.context).values()) for c in stats.clusters)
    assert credited == 120 - during_fit


# ==================== The fit in the background, and a failed fit ====================


class HeldFit:
    """Replaces ``pickllm.contexts.fit_prompts``: each fit announces itself, then waits until
    released (or fails when told), so that a test orders events around a running fit."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail: bool = False) -> None:
        from pickllm import contexts

        self.real = contexts.fit_prompts
        self.started = threading.Event()
        self.release = threading.Event()
        self.fail = fail
        self.calls = 0
        self.threads: list[str] = []
        monkeypatch.setattr(contexts, "fit_prompts", self)

    def __call__(self, prompts: list[str], config: PromptContexts) -> PromptContextsCore:
        self.calls += 1
        self.threads.append(threading.current_thread().name)
        self.started.set()
        assert self.release.wait(60), "the test never released the fit"
        if self.fail:
            raise RuntimeError("injected fit failure")
        return self.real(prompts, config)


def test_a_background_fit_holds_no_selection_then_credits_the_warmup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The selection completing the warm-up returns while its fit is held; selections during
    the fit stay in the warm-up context (not kept, not credited), warm-up feedback arriving
    meanwhile is kept; once installed, the clusters hold exactly the warm-up's feedback."""
    held = HeldFit(monkeypatch)
    r = router(warmup=30, background_fit=True)
    queries = list(stream(100))
    late = [r.select(prompt=text) for text, _ in queries[:2]]  # answered during the fit
    assert {context for context, _ in play(r, iter(queries[2:30]))} == {"default"}
    assert held.started.wait(60)
    assert held.threads == ["pickllm-prompt-contexts-fit"]
    stats = r.stats().prompt_contexts
    assert stats is not None
    assert (stats.fitted, stats.fitting, stats.state) == (False, True, "fitting")
    during = play(r, iter(queries[30:40]))
    assert {context for context, _ in during} == {"default"}
    for decision, (_, task) in zip(late, queries, strict=False):
        r.feedback(decision, accuracy=float(decision.model == MODELS[task]))
    assert r.stats().prompt_contexts.warmup_prompts == 30  # type: ignore[union-attr]
    held.release.set()
    wait_fit(r)
    stats = r.stats().prompt_contexts
    assert stats is not None
    assert (stats.fitted, stats.fitting, stats.state) == (True, False, "fitted")
    credited = sum(sum(r.feedback_counts(c.context).values()) for c in stats.clusters)
    assert credited == 30, "the warm-up's feedback, not the 10 routed during the fit"
    assert sum(r.feedback_counts("default").values()) == 40
    assert {context for context, _ in play(r, iter(queries[40:]))} == {
        "cluster-0",
        "cluster-1",
        "cluster-2",
    }


def test_a_background_fit_is_fitting_until_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """While the fitted clusters are being installed (the warm-up's feedback credited), the
    mapper still says "fitting" and ``wait_fit`` still waits: never "warmup" in between (a CI
    run once saw a fit ended and not yet installed, reported as the warm-up)."""
    r = router(warmup=30, background_fit=True)
    mapper = r._mapper
    assert mapper is not None
    adopt = mapper._adopt
    installing, release = threading.Event(), threading.Event()

    def held_adopt(*args: object) -> None:
        installing.set()
        assert release.wait(60), "the test never released the installation"
        adopt(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(mapper, "_adopt", held_adopt)
    queries = list(stream(30))
    play(r, iter(queries[:29]))
    # The last warm-up prompt starts the fit; its feedback waits: the held installation holds
    # the mapper's lock, which feedback takes. Nothing below takes it.
    last = r.select(prompt=queries[29][0])
    assert installing.wait(60)
    assert mapper.state == "fitting"
    assert not mapper.wait_fit(0), "wait_fit returned before the clusters were installed"
    release.set()
    wait_fit(r)
    r.feedback(last, accuracy=1.0)
    stats = r.stats().prompt_contexts
    assert stats is not None
    assert (stats.fitted, stats.state) == (True, "fitted")


def test_a_background_fit_waited_for_learns_what_the_inline_fit_does() -> None:
    """With nothing routed while it runs, a background fit installs the same clusters with the
    same credited feedback as the inline fit: the two routers then decide alike."""
    inline, background = router(warmup=30), router(warmup=30, background_fit=True)
    queries = list(stream(150))
    assert play(inline, iter(queries[:30])) == play(background, iter(queries[:30]))
    wait_fit(background)
    assert background.stats().prompt_contexts == inline.stats().prompt_contexts
    assert play(background, iter(queries[30:])) == play(inline, iter(queries[30:]))


@pytest.mark.parametrize("background", [False, True])
def test_a_failed_fit_is_shown_logged_and_routing_goes_on(
    background: bool, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A fit that raises (inline or in the background) is recorded in stats and logged; the
    selection that started it stands (its decision settles normally), routing stays in the
    warm-up context, and the fit is not retried (it is a function of the warm-up prompts)."""
    held = HeldFit(monkeypatch, fail=True)
    held.release.set()
    r = router(warmup=30, background_fit=background)
    with caplog.at_level("ERROR", logger="pickllm.contexts"):
        played = play(r, stream(30))
        wait_fit(r)
    assert {context for context, _ in played} == {"default"}
    assert r.pending == 0
    stats = r.stats().prompt_contexts
    assert stats is not None
    assert stats.state == "failed"
    assert stats.fit_error == "RuntimeError: injected fit failure"
    assert [rec.getMessage() for rec in caplog.records if rec.name == "pickllm.contexts"] == [
        "pickllm: the prompt-contexts fit failed, routing stays in the warm-up context: "
        "RuntimeError: injected fit failure"
    ]
    assert {context for context, _ in play(r, stream(20))} == {"default"}
    assert held.calls == 1
    assert r.stats().prompt_contexts.warmup_prompts == 30  # type: ignore[union-attr]


def test_a_prompt_with_a_lone_surrogate_is_refused() -> None:
    """UTF-8 cannot encode it, so the mapper could neither fit on it nor assign it: refused
    before anything is selected (it would otherwise break the fit of the whole warm-up)."""
    r = router(warmup=30)
    with pytest.raises(PromptError, match="lone surrogate at index 5"):
        r.select(prompt="hello\ud800 world")
    assert r.pending == 0
    assert r.stats().prompt_contexts.warmup_prompts == 0  # type: ignore[union-attr]
    assert r.select(prompt="héllo wörld").context == "default"


def test_a_published_mapper_adopted_during_a_background_fit_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With shared state, another replica's mapper may be published while this replica's own
    fit still runs: adopted at once, and the late fit neither replaces it nor is proposed."""
    other = router(warmup=30)
    play(other, stream(30))
    published = other._mapper.fitted.to_bytes()  # type: ignore[union-attr]
    held = HeldFit(monkeypatch)
    r = router(warmup=30, background_fit=True)
    mapper = r._mapper
    assert mapper is not None
    mapper.share(r._core)
    play(r, iter(list(stream(60))[30:]))  # other prompts: its own fit would differ
    assert held.started.wait(60)
    mapper.adopt(published)
    assert mapper.state == "fitted"
    held.release.set()
    wait_fit(r)
    assert mapper.state == "fitted"
    assert mapper.offer() == published
    assert mapper._proposal is None


def test_the_replay_learns_in_the_clusters_without_pooling_the_warmup_again() -> None:
    """Each warm-up feedback is learned in the warm-up context (and pooled there, in the
    evidence the ``share`` prior reads), then credited to its cluster without being pooled a
    second time: the router's learned state equals a plain router's that learned the warm-up
    in the default context and ``credit``-ed each outcome to its cluster, at the same points
    (the replay when the last warm-up prompt is selected, its own feedback on arrival);
    crediting with ``observe`` (pooled twice) gives another state."""
    policy = UCB(share=5.0, floor=0.0, detect_changes=None)
    r = Router(list(MODELS), policy=policy, reward=ACCURACY_ONLY, seed=11,
               contexts=PromptContexts(warmup=30, max_clusters=6))  # fmt: skip
    once = Router(list(MODELS), policy=policy, reward=ACCURACY_ONLY, seed=11)
    twice = Router(list(MODELS), policy=policy, reward=ACCURACY_ONLY, seed=11)
    events: list[tuple[str, str, float, float]] = []

    def credit(text: str, model: str, accuracy: float, probability: float) -> None:
        mapper = r._mapper
        assert mapper is not None
        cluster = mapper.context(text, None)
        once._core.credit(cluster, model, accuracy=accuracy, probability=probability)
        twice._core.observe(cluster, model, accuracy=accuracy, probability=probability)

    for text, task in stream(30):
        d = r.select(prompt=text)
        plain = [p.select() for p in (once, twice)]
        assert all((p.model, p.probability) == (d.model, d.probability) for p in plain)
        if len(events) == 29:  # this selection completed the warm-up: the replay
            for event in events:
                credit(*event)
        accuracy = float(d.model == MODELS[task])
        r.feedback(d, accuracy=accuracy)
        for router_, decision in zip((once, twice), plain, strict=True):
            router_.feedback(decision, accuracy=accuracy)
        events.append((text, d.model, accuracy, d.probability))
    credit(*events[-1])  # the last warm-up decision, answered after the fit
    assert r.stats().prompt_contexts.fitted  # type: ignore[union-attr]
    assert r._core.learned() == once._core.learned()
    assert r._core.learned() != twice._core.learned()
