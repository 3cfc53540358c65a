"""A digest of what seeded routers decide and learn: run it with two builds to show a speed-up
changed no bit of any decision.

For each of several UCB settings (the default, without floor or detector, discounted, KL-UCB,
without sharing, a wider exploration, locking), a router with a fixed seed makes 20,000
decisions over interleaved contexts and the default one, with ``exclude`` and ``allowed`` now and
then, most of them answered with seeded rewards whose best model switches halfway (so the change
detector restarts contexts). The digest covers every decision's model and probability bits,
every reward's bits and the learned state's bytes at the end; equal digests mean the same
decisions, rewards and learned state.

    python benches/decision_digest.py > before.txt   # with one build installed
    python benches/decision_digest.py > after.txt    # with the other
    diff before.txt after.txt
"""

from __future__ import annotations

import hashlib
import logging
import random
import struct

from pickllm import UCB, Policy, Router

MODELS = [f"model-{i}" for i in range(5)]
POLICIES: dict[str, Policy] = {
    "UCB()": UCB(),
    "UCB(floor=0, detect_changes=None)": UCB(floor=0.0, detect_changes=None),
    "UCB(discount=0.99)": UCB(discount=0.99),
    "UCB(bound='kl', share=0)": UCB(bound="kl", share=0.0),
    "UCB(share=0, floor=0.05)": UCB(share=0.0, floor=0.05),
    "UCB(exploration=2, share=20)": UCB(exploration=2.0, share=20.0),
    "UCB(lock=True, detect_changes=None)": UCB(lock=True, detect_changes=None),
}


def digest(policy: Policy) -> str:
    h = hashlib.sha256()
    draw = random.Random(3)
    router = Router(MODELS, policy=policy, seed=5)
    for step in range(20_000):
        context = None if step % 13 == 0 else f"c{(step // (1 + draw.randrange(40))) % 7}"
        exclude = [MODELS[draw.randrange(5)]] if step % 11 == 0 else None
        allowed = [MODELS[1], MODELS[3]] if step % 29 == 0 else None
        d = router.select(context, exclude=exclude, allowed=allowed)
        h.update(d.model.encode() + struct.pack("<d", d.probability))
        if step % 7 == 3:
            continue
        best = MODELS[2] if step < 10_000 else MODELS[4]
        accuracy = float(draw.random() < (0.8 if d.model == best else 0.4))
        reward = router.feedback(
            d, accuracy=accuracy, cost=0.001 * draw.random(), latency=draw.random()
        )
        h.update(struct.pack("<d", reward))
    h.update(router._core.learned())
    return h.hexdigest()[:16]


def main() -> None:
    logging.getLogger("pickllm.router").setLevel(logging.ERROR)  # detected changes are expected
    for name, policy in POLICIES.items():
        print(f"{name}: {digest(policy)}")


if __name__ == "__main__":
    main()
