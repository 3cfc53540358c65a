"""Two builds of the core's criterion bench, in alternating rounds on the same machine.

On a shared machine a single run of each build differs by more than the change being measured,
so this runs the baseline and the candidate in turn, ``--rounds`` times each, and reports per
bench the median over rounds of each build and their ratio (candidate / baseline).

Build the baseline's bench binary from another checkout, e.g. for main::

    git archive main | tar -x -C /tmp/base && (cd /tmp/base && find rust benches -exec touch {} + \\
        && cargo bench --bench core --no-run)
    cargo bench --bench core --no-run
    python benches/ab_core.py /tmp/base/target/release/deps/core-HASH \\
        target/release/deps/core-HASH '^select_feedback/automaton/4$'
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess

LINE = re.compile(r"^test (\S+) \.\.\. bench:\s+([\d,]+) ns/iter")


def run(binary: str, pattern: str) -> dict[str, float]:
    timing = ["--warm-up-time", "1", "--measurement-time", "2"]
    out = subprocess.run(
        [binary, "--bench", pattern, "--noplot", "--output-format", "bencher", *timing],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return {m[1]: float(m[2].replace(",", "")) for m in map(LINE.match, out.splitlines()) if m}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("baseline")
    parser.add_argument("candidate")
    parser.add_argument("pattern", help="criterion filter (a regex over bench ids)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    times: dict[str, dict[str, list[float]]] = {}
    for _ in range(args.rounds):
        for build in ("baseline", "candidate"):
            for bench, ns in run(getattr(args, build), args.pattern).items():
                times.setdefault(bench, {}).setdefault(build, []).append(ns)
    print(f"{'bench':45} {'baseline ns':>12} {'candidate ns':>13} {'ratio':>6}")
    for bench, builds in times.items():
        base = statistics.median(builds.get("baseline", [float("nan")]))
        cand = statistics.median(builds.get("candidate", [float("nan")]))
        print(f"{bench:45} {base:12.1f} {cand:13.1f} {cand / base:6.2f}")


if __name__ == "__main__":
    main()
