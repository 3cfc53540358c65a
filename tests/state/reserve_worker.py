"""A process that holds shared-budget reservations until it is killed (run as a script by
test_shared_budget.py). Argument: JSON {"url", "lease_seconds"}. Prints ``held`` once its
reservations are in Redis, then waits on stdin for ever."""

from __future__ import annotations

import json
import sys


def main() -> None:
    from pickllm import Budget, RedisState, Router

    args = json.loads(sys.argv[1])
    state = RedisState(url=args["url"], name="lease", lease_seconds=args["lease_seconds"])
    router = Router(["a", "b"], seed=1, shared=state)
    assert router._shared is not None
    spending = router._shared.spending(Budget(total=1.0))
    held = [spending.reserve(context, 0.25) for context in ("x", "y")]
    assert all(held)
    print("held", flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
