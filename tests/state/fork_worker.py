"""A router with shared state built before ``fork()`` (gunicorn ``--preload``), used in the
parent and in two children (run as a script by test_fork.py).

Argument: JSON {"url", "name"}. Each process feeds back its own decisions and syncs; each child
prints its replica id and status as JSON and exits 0; the parent waits for them, syncs again
and prints its own status and learned state.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys


def drive(router: object, n: int, context: str) -> None:
    for _ in range(n):
        decision = router.select(context)  # type: ignore[attr-defined]
        router.feedback(decision, accuracy=0.7)  # type: ignore[attr-defined]


def main() -> None:
    from pickllm import RedisState, Router

    args = json.loads(sys.argv[1])
    router = Router(["a", "b"], seed=1, shared=RedisState(url=args["url"], name=args["name"]))
    drive(router, 100, "parent")
    router.sync(timeout=30)
    assert router._shared is not None
    children = []
    for child in range(2):
        pid = os.fork()
        if pid == 0:
            drive(router, 50, f"child-{child}")
            router.sync(timeout=30)
            status = dataclasses.asdict(router.shared_status())
            line = json.dumps({"child": child, "id": router._shared.id, "status": status})
            os.write(1, f"{line}\n".encode())  # one write: the children's lines never mix
            router.close()
            os._exit(0)
        children.append(pid)
    drive(router, 10, "parent")
    for pid in children:
        _, code = os.waitpid(pid, 0)
        assert code == 0, code
    router.sync(timeout=30)
    router.sync(timeout=30)
    counts = {c: sum(router.feedback_counts(c).values()) for c in router.contexts()}
    status = dataclasses.asdict(router.shared_status())
    print(json.dumps({"parent": router._shared.id, "counts": counts, "status": status}))
    router.close()


if __name__ == "__main__":
    main()
