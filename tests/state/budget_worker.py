"""One process of the shared-budget test (run as a script): 200 threads reserve and settle
against one budget in Redis at once; prints the costs it settled (nano-dollars) as JSON.

Argument: JSON {"url", "seed"}. The threads start together on a barrier.
"""

from __future__ import annotations

import json
import random
import sys
import threading

from pickllm import Budget, RedisState, Router

CALLS = 200


def main() -> None:
    args = json.loads(sys.argv[1])
    router = Router(["a", "b"], seed=args["seed"], shared=RedisState(url=args["url"], name="b"))
    assert router._shared is not None
    spending = router._shared.spending(Budget(per_context=0.2, total=0.5))
    rng = random.Random(args["seed"])
    plans = [(f"tenant-{rng.randrange(4)}", rng.uniform(0.001, 0.01)) for _ in range(CALLS)]
    start = threading.Barrier(CALLS)
    settled: list[tuple[str, int]] = []
    lock = threading.Lock()

    def call(context: str, bound: float) -> None:
        start.wait()
        reservation = spending.reserve(context, bound)
        if reservation is None:
            return
        cost = bound * 0.75  # the call cost less than its worst case
        spending.settle(reservation, cost)
        with lock:
            settled.append((context, round(cost * 10**9)))

    threads = [threading.Thread(target=call, args=plan) for plan in plans]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps(settled), flush=True)
    router.close()


if __name__ == "__main__":
    main()
