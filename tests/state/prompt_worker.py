"""One worker process of the shared prompt-contexts tests (run as a script).

Argument: JSON {"url", "name", "seed", "warmup"}. A router with ``PromptContexts`` sharing its
state; driven by lines on stdin, one answer line on stdout each (events, never timers):

- ``route <n> <offset>``: route prompts ``offset`` .. ``offset + n - 1`` (select with the prompt,
  feedback by task and model), then sync; answers ``routed``.
- ``adopted``: sync until the mapper is in use (at most 600 syncs); answers ``adopted``.
- ``state``: sync twice, then answers the JSON of the contexts of the probe prompts, the
  mapper's bytes (hex) and the learned part.
- ``quit``: closes the router and exits.
"""

from __future__ import annotations

import json
import sys
import time

from pickllm import PromptContexts, RedisState, Reward, Router

MODELS = ["a", "b", "c"]
TASKS = (
    "write a python function that returns",
    "what is the derivative of the polynomial",
    "which painter made the portrait of",
)
FILLER = ("apple", "river", "seven", "green", "table", "cloud", "stone", "music", "north", "paper")


def prompt(i: int) -> tuple[str, int]:
    """Prompt ``i`` and its task: the task's words plus two fillers all tasks share."""
    task = i % 3
    return f"{TASKS[task]} {FILLER[(3 * i + task) % 10]} {FILLER[(7 * i + 1) % 10]}", task


def main() -> None:
    args = json.loads(sys.argv[1])
    state = RedisState(url=args["url"], name=args["name"], reconnect_seconds=0.02)
    router = Router(
        MODELS,
        seed=args["seed"],
        reward=Reward(accuracy=1.0, cost=0.0, latency=0.0),
        shared=state,
        contexts=PromptContexts(warmup=args["warmup"], max_clusters=6),
    )
    mapper = router._mapper
    assert mapper is not None
    for line in sys.stdin:
        command, *words = line.split()
        if command == "route":
            n, offset = int(words[0]), int(words[1])
            for i in range(offset, offset + n):
                text, task = prompt(i)
                decision = router.select(prompt=text)
                # Model `task` is right for its task, the others never.
                router.feedback(decision, accuracy=float(MODELS.index(decision.model) == task))
            router.sync(timeout=60)
            print("routed", flush=True)
        elif command == "adopted":
            for _ in range(600):
                router.sync(timeout=60)
                if mapper.fitted is not None:
                    break
                time.sleep(0.05)  # a bound on the wait, not an assertion (the test checks)
            print("adopted", flush=True)
        elif command == "state":
            router.sync(timeout=60)
            router.sync(timeout=60)
            fitted = mapper.fitted
            probes = [prompt(i)[0] for i in range(1000, 1030)]
            print(
                json.dumps(
                    {
                        "contexts": None
                        if fitted is None
                        else [mapper.context(p, None) for p in probes],
                        "mapper": None if fitted is None else fitted.to_bytes().hex(),
                        "learned": router._core.learned().decode(),
                        "status": router.shared_status().last_error,
                    }
                ),
                flush=True,
            )
        elif command == "quit":
            break
    router.close()


if __name__ == "__main__":
    main()
