"""Run every benchmark and print one table (``make bench``; see docs/performance.md).

1. ``cargo bench --bench core``: criterion timings of the Rust core, read back from
   ``target/criterion/**/new/sample.json`` (per-iteration time of each sample);
   and ``cargo bench --bench prompt_contexts``: the prompt-to-context mapper, in the same table;
2. ``cargo bench --bench memory``: bytes per idle context and per pending decision, from RSS;
3. ``pytest benches/python --benchmark-json``: the Python API next to its baselines.

Prints medians, spreads (interquartile range and min-max over samples or rounds) and ratios
against each baseline, then the issue's targets with the measured value; writes the same text to
``target/bench/report.md`` and the raw pytest-benchmark JSON beside it. Nothing here asserts a
time: it reports.

Options: ``--skip-rust`` / ``--skip-python`` reuse nothing and just leave that part out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "target" / "bench"
CRITERION = ROOT / "target" / "criterion"

#: Each baseline is compared with the pickllm policy that does the same maths.
PEER = {
    "plain Python automaton": "pickllm automaton",
    "NumPy automaton": "pickllm automaton",
    "plain Python q-learning": "pickllm q-learning",
    "River EpsilonGreedy": "pickllm q-learning",
    "plain Python automaton (pickle)": "pickllm automaton",
    "minimal Python epsilon-greedy": "pickllm q-learning",
    # Below 1x: the share of pickllm's time that is the bare call into the extension.
    "PyO3 no-op floor": "pickllm automaton",
    "raw httpx": "OpenAICompatible, no limits",
}


@dataclass
class Figure:
    """One measured time, in nanoseconds per operation."""

    median: float
    q1: float
    q3: float
    low: float
    high: float
    samples: int

    @classmethod
    def of(cls, values: list[float]) -> Figure:
        values = sorted(values)
        q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
        return cls(statistics.median(values), q1, q3, values[0], values[-1], len(values))

    def spread(self) -> str:
        return f"{ns(self.q3 - self.q1)} ({ns(self.low)}-{ns(self.high)})"


def ns(value: float) -> str:
    """A duration in ns, us or ms with three significant digits."""
    for unit, scale in (("ms", 1e6), ("us", 1e3)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value:.3g} ns"


def run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    print("$", " ".join(command), file=sys.stderr, flush=True)
    return subprocess.run(command, cwd=ROOT, check=True, text=True, **kwargs)  # type: ignore[call-overload, no-any-return]


def table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    rows = list(rows)
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)]


# ==================== Rust ====================


def criterion_results(since: float) -> dict[str, Figure]:
    """Every criterion bench written since ``since``, by id ("select_feedback/automaton/4")."""
    results = {}
    for info in CRITERION.glob("**/new/benchmark.json"):
        if info.stat().st_mtime < since:
            continue
        meta = json.loads(info.read_text())
        sample = json.loads((info.parent / "sample.json").read_text())
        per_iteration = [t / n for t, n in zip(sample["times"], sample["iters"], strict=True)]
        results[meta["full_id"]] = Figure.of(per_iteration)
    return results


def rust_section(core: dict[str, Figure], memory: list[dict[str, float | str]]) -> list[str]:
    lines = ["## Rust core (criterion; median per operation, IQR (min-max) over 50 samples)", ""]
    rows = []
    for bench_id in sorted(core, key=_bench_order):
        figure = core[bench_id]
        rows.append([bench_id, ns(figure.median), figure.spread()])
    lines += table(["bench", "median", "IQR (min-max)"], rows)
    lines += ["", "## Memory (RSS growth, one fresh process per line)", ""]
    rows = []
    for m in memory:
        if m["kind"] == "context":
            rows.append(
                [
                    f"idle context, {m['policy']}, {m['models']} models",
                    f"{m['bytes_each']:.0f} B",
                    f"{m['target_bytes']} B",
                    f"{float(m['rss_bytes']) / 2**20:.0f} MiB",
                ]
            )
        elif m["kind"] == "pending":
            rows.append(
                [
                    f"pending decision, {m['models']} models",
                    f"{m['bytes_each']:.0f} B",
                    "O(1)",
                    f"{float(m['rss_bytes']) / 2**20:.0f} MiB",
                ]
            )
    lines += table(["what (1,000,000 of them)", "bytes each", "target", "total"], rows)
    bounded = [
        [
            str(m["max_contexts"]),
            f"{m['decisions']:,}",
            f"{m['held']:,}",
            f"{m['evicted']:,}",
            f"{float(m['rss_bytes']) / 1e6:.1f} MB",
        ]
        for m in memory
        if m["kind"] == "distinct_contexts"
    ]
    if bounded:
        lines += ["", "Decisions with feedback, each in a new context:", ""]
        lines += table(["max_contexts", "decisions", "held", "evicted", "RSS growth"], bounded)
    return lines


def _bench_order(bench_id: str) -> tuple[str, ...]:
    return tuple(part.zfill(8) if part.isdigit() else part for part in bench_id.split("/"))


# ==================== Python ====================


def python_results(path: Path) -> list[dict[str, object]]:
    data = json.loads(path.read_text())
    return list(data["benchmarks"])


def python_figure(bench: dict[str, object]) -> Figure:
    stats = bench["stats"]
    assert isinstance(stats, dict)
    info = bench["extra_info"]
    assert isinstance(info, dict)
    # Rounds of the thread bench time a whole batch; report per decision.
    scale = 1e9 / float(info.get("decisions", 1))
    return Figure(
        stats["median"] * scale,
        stats["q1"] * scale,
        stats["q3"] * scale,
        stats["min"] * scale,
        stats["max"] * scale,
        int(stats["rounds"]),
    )


def python_section(
    benches: list[dict[str, object]],
) -> tuple[list[str], dict[tuple[str, str, int], Figure]]:
    by_key: dict[tuple[str, str, int], Figure] = {}
    order: list[tuple[str, int]] = []
    for bench in benches:
        info = bench["extra_info"]
        assert isinstance(info, dict)
        key = (str(info["op"]), str(info["system"]), int(info["models"]))
        by_key[key] = python_figure(bench)
        if (key[0], key[2]) not in order:
            order.append((key[0], key[2]))
    lines = [
        "## Python API (pytest-benchmark; median per call, IQR (min-max) over rounds)",
        "",
        "ratio: the baseline's median over the median of the pickllm policy with the same "
        "maths (automaton for the automata, Q-learning for Q-learning and River's "
        "epsilon-greedy), so 10x means pickllm is ten times faster.",
        "",
    ]
    rows = []
    for op, models in order:
        for (k_op, system, k_models), figure in by_key.items():
            if (k_op, k_models) != (op, models):
                continue
            peer = PEER.get(system)
            ratio = ""
            if peer and (op, peer, models) in by_key:
                ratio = f"{figure.median / by_key[(op, peer, models)].median:.1f}x"
            rows.append(
                [
                    op,
                    str(models) if models else "",
                    system,
                    ns(figure.median),
                    figure.spread(),
                    ratio,
                ]
            )
    lines += table(["operation", "models", "system", "median", "IQR (min-max)", "ratio"], rows)
    return lines, by_key


# ==================== Targets ====================


def targets(
    py: dict[tuple[str, str, int], Figure],
    core: dict[str, Figure],
    memory: list[dict[str, float | str]],
) -> list[str]:
    rows: list[list[str]] = []

    def check(name: str, value: str, met: bool | None) -> None:
        rows.append([name, value, "n/a" if met is None else ("met" if met else "MISSED")])

    pair = py.get(("select+feedback", "pickllm automaton", 4))
    plain = py.get(("select+feedback", "plain Python automaton", 4))
    plain_q = py.get(("select+feedback", "plain Python q-learning", 4))
    pair_q = py.get(("select+feedback", "pickllm q-learning", 4))
    if pair:
        check(
            "Python select+feedback, 4 models, automaton < 1 us",
            ns(pair.median),
            pair.median < 1000,
        )
    if pair and plain:
        ratio = plain.median / pair.median
        check("... >= 5x faster than plain Python automaton", f"{ratio:.1f}x", ratio >= 5)
    if pair_q and plain_q:
        ratio = plain_q.median / pair_q.median
        check(
            "... Q-learning >= 5x faster than plain Python Q-learning", f"{ratio:.1f}x", ratio >= 5
        )
    for policy in ("automaton", "q-learning"):
        wide = py.get(("select+feedback", f"pickllm {policy}", 64))
        if wide:
            check(
                f"Python select+feedback, 64 models, {policy} < 2 us",
                ns(wide.median),
                wide.median < 2000,
            )
    for policy in ("automaton", "q_learning"):
        figure = core.get(f"select_feedback/{policy}/4")
        if figure:
            check(
                f"core select+feedback, 4 models, {policy} < 50 ns",
                ns(figure.median),
                figure.median < 50,
            )
    for m in memory:
        if m["kind"] == "context":
            met = float(m["bytes_each"]) <= float(m["target_bytes"])
            check(
                f"idle context, {m['policy']}, {m['models']} models <= {m['target_bytes']} B",
                f"{m['bytes_each']:.0f} B",
                met,
            )
            if m["models"] == 4 and m["policy"] == "automaton":
                gib = float(m["rss_bytes"]) / 2**30
                check("1,000,000 contexts (4 models) fit in 1 GB", f"{gib:.2f} GiB", gib <= 1)
        elif m["kind"] == "pending":
            check("pending decision O(1)", f"{m['bytes_each']:.0f} B each", None)
    pending = [core.get(f"pending/automaton_4/{n}") for n in (0, 100000)]
    if all(pending):
        a, b = (p.median for p in pending if p)
        check("select+feedback with 0 vs 100,000 pending", f"{ns(a)} vs {ns(b)}", b <= a * 1.25)
    one = py.get(("threads", "pickllm automaton, 1 thread(s)", 4))
    two = py.get(("threads", "pickllm automaton, 2 thread(s)", 4))
    if one and two:
        check(
            "2 threads not slower in total than 1 (time per decision)",
            f"{ns(two.median)} vs {ns(one.median)} ({two.median / one.median:.2f}x)",
            two.median <= one.median * 1.05,
        )
    check("replay >= 20M decisions/s", "TODO (replay engine not benched yet)", None)
    check("Router.route overhead < 50 us", "TODO (route loop not benched yet)", None)
    return ["## Targets (issue 5)", "", *table(["target", "measured", "status"], rows)]


def machine() -> list[str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return [
        f"Machine: {os.cpu_count()} cores, {model}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}; {time.strftime('%Y-%m-%d %H:%M')}",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--skip-rust", action="store_true")
    parser.add_argument("--skip-python", action="store_true")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    lines = ["# pickllm benchmarks", "", *machine(), ""]
    core: dict[str, Figure] = {}
    memory: list[dict[str, float | str]] = []
    py: dict[tuple[str, str, int], Figure] = {}
    if not args.skip_rust:
        start = time.time() - 1
        run(["cargo", "bench", "--locked", "--bench", "core"], stdout=subprocess.DEVNULL)
        run(["cargo", "bench", "--locked", "--bench", "prompt_contexts"], stdout=subprocess.DEVNULL)
        core = criterion_results(start)
        out = run(
            ["cargo", "bench", "--locked", "--bench", "memory"], stdout=subprocess.PIPE
        ).stdout
        memory = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    if not args.skip_python:
        json_path = OUT / "python.json"
        run(
            [
                sys.executable,
                "-m",
                "pytest",
                "benches/python",
                "-q",
                "-p",
                "no:cacheprovider",
                f"--benchmark-json={json_path}",
                "--benchmark-min-rounds=20",
                "--benchmark-min-time=0.0002",
                "--benchmark-max-time=1.0",
                "--benchmark-warmup=on",
                "--benchmark-sort=name",
                "--benchmark-columns=median,iqr,min,max,rounds",
            ],
            stdout=subprocess.DEVNULL,
        )
        section, py = python_section(python_results(json_path))
        lines += [*section, ""]
    if core or memory:
        lines += [*rust_section(core, memory), ""]
    lines += targets(py, core, memory)
    text = "\n".join(lines) + "\n"
    (OUT / "report.md").write_text(text)
    print(text)
    print(f"(written to {OUT / 'report.md'})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
