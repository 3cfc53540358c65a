"""Gateway overhead, side by side in one run: `pickllm serve`, a bare Starlette pass-through (the
floor of a Python gateway, benches/gateway/floor.py) and, when given, LiteLLM's proxy, all in
front of the same instant local upstream (tests/gateway/upstream.py), driven by an aiohttp load
generator in closed loop at each concurrency.

Added latency is a gateway's p50 (p99) minus the upstream's own p50 (p99) at the same
concurrency; the sustained rate is the requests per second completed at the highest concurrency.

    python benches/gateway/bench.py [--requests 2000] [--litellm-proxy /venv/bin/litellm]

Writes target/bench/gateway.json and, with --figure PATH, a figure of added latency against load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from gateway_servers import UPSTREAM, start  # noqa: E402
from servers import free_port  # noqa: E402

KEY = "sk-bench-0123456789"
BODY = {"model": "auto", "messages": [{"role": "user", "content": "Name the largest planet."}]}


async def load(url: str, key: str | None, concurrency: int, requests: int) -> dict[str, float]:
    """Closed loop: ``concurrency`` tasks send requests back to back until ``requests`` are done."""
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    payload = json.dumps(BODY).encode()
    latencies: list[float] = []
    failures = 0
    remaining = requests
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal remaining, failures
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                async with session.post(url, data=payload, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        failures += 1
                latencies.append(time.perf_counter() - started)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - began
    latencies.sort()
    return {
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        "rate": len(latencies) / wall,
        "failures": failures,
    }


def serve_pickllm(upstream: str, folder: Path) -> tuple[str, subprocess.Popen[bytes]]:
    config = folder / "pickllm.toml"
    config.write_text(
        f"""
[server]
api_keys = ["env:PICKLLM_BENCH_KEY"]
[models.a]
base_url = "{upstream}"
[models.b]
base_url = "{upstream}"
[routers.auto]
models = ["a", "b"]
"""
    )
    port = free_port()
    process = start(
        [sys.executable, "-m", "pickllm", "serve", "--config", str(config), "--port", str(port)],
        f"http://127.0.0.1:{port}/readyz",
        folder / "pickllm.log",
        {"PICKLLM_BENCH_KEY": KEY},
    )
    return f"http://127.0.0.1:{port}/v1/chat/completions", process


def serve_floor(upstream: str, folder: Path) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    script = Path(__file__).with_name("floor.py")
    process = start(
        [sys.executable, str(script), str(port), upstream],
        f"http://127.0.0.1:{port}/healthz",
        folder / "floor.log",
    )
    return f"http://127.0.0.1:{port}/v1/chat/completions", process


def serve_litellm(litellm: str, upstream: str, folder: Path) -> tuple[str, subprocess.Popen[bytes]]:
    config = folder / "litellm.yaml"
    config.write_text(
        f"""model_list:
  - model_name: auto
    litellm_params:
      model: openai/auto
      api_base: {upstream}
      api_key: none
general_settings:
  master_key: {KEY}
"""
    )
    port = free_port()
    process = start(
        [
            litellm,
            "--config",
            str(config),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--num_workers",
            "1",
        ],
        f"http://127.0.0.1:{port}/health/liveliness",
        folder / "litellm.log",
        {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"},
    )
    return f"http://127.0.0.1:{port}/v1/chat/completions", process


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000, help="per target and concurrency")
    parser.add_argument("--levels", default="1,16,64")
    parser.add_argument("--litellm-proxy", metavar="PATH", help="the `litellm` proxy command")
    parser.add_argument("--out", type=Path, default=ROOT / "target" / "bench" / "gateway.json")
    parser.add_argument("--figure", type=Path)
    parser.add_argument("--replot", type=Path, metavar="JSON", help="only redraw from a report")
    args = parser.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",")]
    if args.replot:
        report = json.loads(args.replot.read_text())
        figure(report, levels, args.figure)
        return dict(report)
    folder = Path(tempfile.mkdtemp(prefix="pickllm-gateway-bench-"))
    port = free_port()
    upstream_process = start(
        [sys.executable, str(UPSTREAM), str(port)],
        f"http://127.0.0.1:{port}/_stats",
        folder / "upstream.log",
    )
    upstream = f"http://127.0.0.1:{port}/v1"
    processes = [upstream_process]
    targets: dict[str, tuple[str, str | None]] = {
        "upstream (direct)": (f"{upstream}/chat/completions", None)
    }
    try:
        url, process = serve_floor(upstream, folder)
        processes.append(process)
        targets["bare Starlette pass-through"] = (url, None)
        url, process = serve_pickllm(upstream, folder)
        processes.append(process)
        targets["pickllm serve"] = (url, KEY)
        if args.litellm_proxy:
            url, process = serve_litellm(args.litellm_proxy, upstream, folder)
            processes.append(process)
            targets["LiteLLM proxy"] = (url, KEY)
        results: dict[str, dict[int, dict[str, float]]] = {}
        for name, (url, key) in targets.items():
            asyncio.run(load(url, key, 8, min(200, args.requests)))  # warm up
            results[name] = {}
            for level in levels:
                results[name][level] = asyncio.run(load(url, key, level, args.requests))
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)
    report = summarize(results, levels)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    if args.figure:
        figure(report, levels, args.figure)
    return report


def summarize(
    results: dict[str, dict[int, dict[str, float]]], levels: list[int]
) -> dict[str, object]:
    direct = results["upstream (direct)"]
    rows = []
    print(
        f"{'target':32} {'c':>3} {'p50 ms':>8} {'p99 ms':>8} {'added p50':>10} "
        f"{'added p99':>10} {'req/s':>8} {'fail':>5}"
    )
    for name, by_level in results.items():
        for level in levels:
            r = by_level[level]
            added50 = r["p50_ms"] - direct[level]["p50_ms"]
            added99 = r["p99_ms"] - direct[level]["p99_ms"]
            rows.append(
                {
                    "target": name,
                    "concurrency": level,
                    **r,
                    "added_p50_ms": added50,
                    "added_p99_ms": added99,
                }
            )
            print(
                f"{name:32} {level:>3} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
                f"{added50:>10.2f} {added99:>10.2f} {r['rate']:>8.0f} {r['failures']:>5.0f}"
            )
    best = {name: max(r["rate"] for r in by_level.values()) for name, by_level in results.items()}
    print("\nhighest sustained rate (req/s, best of the concurrencies):")
    for name, rate in best.items():
        print(f"  {name:32} {rate:>8.0f}")
    return {"rows": rows, "best_rate": best, "cpus": os.cpu_count()}


def figure(report: dict[str, object], levels: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["rows"]
    assert isinstance(rows, list)
    fig, ax = plt.subplots(figsize=(6, 4))
    names = dict.fromkeys(r["target"] for r in rows if r["target"] != "upstream (direct)")
    for colour, name in enumerate(names):
        mine = [r for r in rows if r["target"] == name]
        # p99 differences can be negative at low load (noise): the plot floors them at 0.01 ms
        for key, style in (("added_p50_ms", "-"), ("added_p99_ms", "--")):
            ax.plot(
                levels,
                [max(r[key], 0.01) for r in mine],
                marker="o" if style == "-" else "x",
                linestyle=style,
                color=f"C{colour}",
                label=f"{name} {key[6:9]}",
            )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel("added latency over the upstream (ms)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
