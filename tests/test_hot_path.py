"""Router binds the core's select and feedback on each instance (docs/performance.md): the bound
methods must behave exactly like the documented ones on the class."""

from __future__ import annotations

import json
import pickle
from typing import Any

import pytest

from pickllm import ArgumentTypeError, Decision, Router


def decisions(select: Any, feedback: Any) -> list[tuple[str, float, float]]:
    out = []
    for i in range(200):
        d = select(f"c{i % 3}", exclude=["d"] if i % 5 == 0 else None)
        out.append((d.model, d.probability, feedback(d, accuracy=(i % 4) / 3, latency=0.1)))
    return out


def test_bound_methods_match_the_class_methods() -> None:
    fast, slow = Router(list("abcd"), seed=3), Router(list("abcd"), seed=3)
    assert fast.select.__self__ is fast._core  # type: ignore[attr-defined]
    via_class = decisions(
        lambda *a, **k: Router.select(slow, *a, **k),
        lambda *a, **k: Router.feedback(slow, *a, **k),
    )
    assert decisions(fast.select, fast.feedback) == via_class
    # Equal but for their identities, which every router draws at random.
    assert learned(fast.snapshot()) == learned(slow.snapshot())


def learned(blob: bytes) -> dict[str, object]:
    """A snapshot's payload without the router's identity."""
    payload: dict[str, object] = json.loads(blob[24:])
    del payload["identity"]
    return payload


@pytest.mark.parametrize("router", [Router(["a", "b"], seed=1), None])
def test_same_argument_rules_on_both_paths(router: Router | None) -> None:
    # None: a restored router, whose hot path is bound by restore().
    router = router or Router.restore(Router(["a", "b"], seed=1).snapshot())
    for select, feedback in [
        (router.select, router.feedback),
        (
            lambda *a, **k: Router.select(router, *a, **k),
            lambda *a, **k: Router.feedback(router, *a, **k),
        ),
    ]:
        with pytest.raises(TypeError):
            select("x", ["a"])  # exclude is keyword-only
        d = select("x")
        with pytest.raises(TypeError):
            feedback(d, 1.0)  # so are the observations
        with pytest.raises(TypeError):
            feedback(d)  # and accuracy is required
        for field in ("cost", "latency"):
            with pytest.raises(ArgumentTypeError, match=field):
                feedback(d, accuracy=1.0, **{field: None})
        assert feedback(decision=d, accuracy=1.0) == 1.0


def test_subclass_overrides_are_kept_and_pickling_rebinds() -> None:
    class Logged(Router):
        __slots__ = ()
        seen: list[Decision] = []  # noqa: RUF012

        def select(self, context: str | None = None, **kw: Any) -> Decision:
            d = super().select(context, **kw)
            self.seen.append(d)
            return d

    router = Logged(["a", "b"], seed=1)
    d = router.select("x")
    assert Logged.seen == [d]
    assert router.feedback.__self__ is router._core  # type: ignore[attr-defined]
    again = pickle.loads(pickle.dumps(Router(["a", "b"], seed=1)))
    assert again.select.__self__ is again._core  # type: ignore[attr-defined]
