"""One worker process of the multi-process shared-state tests (run as a script).

Argument: JSON {"url", "name", "seed", "phases": [decisions, ...], "checkpoint_every"}.
Talks over stdin/stdout, one line per message, so that the test drives it by events, never by
timers: prints ``replica <id>``; runs each phase (the next one after reading ``go``), printing
``acked <n>`` every 1,000 decisions once ``sync`` confirms all its feedback is in Redis and
applied, and ``phase <i>`` at the end of each; on ``dump`` prints the learned part, the applied
sequence numbers per replica and the status as JSON, then exits.
"""

from __future__ import annotations

import dataclasses
import json
import random
import sys

from pickllm import RedisState, Router

MODELS = ["a", "b", "c", "d"]
CONTEXTS = [f"tenant-{i}" for i in range(8)]


def accuracy(context: str, model: str) -> float:
    """A fixed outcome per (context, model), so the learned state is the same on every run."""
    return (CONTEXTS.index(context) * 7 + MODELS.index(model) * 3) % 10 / 10


def main() -> None:
    args = json.loads(sys.argv[1])
    state = RedisState(
        url=args["url"], name=args["name"], checkpoint_every=args.get("checkpoint_every", 50_000)
    )
    router = Router(MODELS, seed=args["seed"], shared=state)
    rng = random.Random(args["seed"])
    assert router._shared is not None
    print("replica", router._shared.id, flush=True)
    done = 0
    for phase, decisions in enumerate(args["phases"]):
        if phase > 0:
            assert sys.stdin.readline().strip() == "go"
        for _ in range(decisions):
            decision = router.select(rng.choice(CONTEXTS))
            router.feedback(decision, accuracy=accuracy(decision.context, decision.model))
            done += 1
            if done % 1000 == 0:
                router.sync(timeout=120)
                print("acked", done, flush=True)
        router.sync(timeout=120)
        print("phase", phase, flush=True)
    assert sys.stdin.readline().strip() == "dump"
    router.sync(timeout=120)
    print(
        json.dumps(
            {
                "learned": router._core.learned().decode(),
                "seen": router._shared._seen,
                "status": dataclasses.asdict(router.shared_status()),
                "total": sum(sum(router.feedback_counts(c).values()) for c in router.contexts()),
            }
        ),
        flush=True,
    )
    router.close()


if __name__ == "__main__":
    main()
