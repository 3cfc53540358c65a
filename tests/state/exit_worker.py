"""A process that exits with a shared-state router still open (run as a script by
test_exit.py): threads running, a feedback queued, no close().

Argument: JSON {"url", "name", "seed", "decisions"}. Prints, from the last exit handler to run,
the pickllm threads still alive: none, once open replicas are closed at exit. A thread left
waiting inside the core while the interpreter finalizes wakes there after its thread state is
freed: the crash of issue 19. An object that sleeps while it is torn down gives such a thread
the time to wake.
"""

from __future__ import annotations

import atexit
import json
import sys
import threading
import time


def report_threads() -> None:
    alive = [t.name for t in threading.enumerate() if t.name.startswith("pickllm")]
    print(json.dumps({"threads_at_exit": alive}), flush=True)


class SlowToFinalize:
    def __del__(self) -> None:
        time.sleep(0.5)  # releases the GIL to whatever thread still runs


def main() -> None:
    atexit.register(report_threads)  # before pickllm's own handler: so it runs after it
    from pickllm import RedisState, Router

    args = json.loads(sys.argv[1])
    state = RedisState(url=args["url"], name=args["name"])
    router = Router(["a", "b"], seed=args["seed"], shared=state)
    for i in range(args["decisions"]):
        decision = router.select(f"c{i % 5}")
        router.feedback(decision, accuracy=0.5)
    router.sync(timeout=30)
    decision = router.select(f"last-{args['seed']}")
    router.feedback(decision, accuracy=1.0)  # queued at exit: closing at exit publishes it
    globals()["kept"] = (router, SlowToFinalize())  # torn down with the module at exit


if __name__ == "__main__":
    main()
