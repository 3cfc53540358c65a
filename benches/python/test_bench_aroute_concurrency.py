"""`make bench-smoke` runs the aroute concurrency benchmark once, tiny: every target answers and
is reported with its ratio to raw aiohttp. The figures come from
`python benches/python/aroute_concurrency.py` (docs/performance.md)."""

from __future__ import annotations

import aroute_concurrency


def test_aroute_concurrency_bench_runs() -> None:
    report = aroute_concurrency.main(["--concurrency", "4", "--requests", "8", "--rounds", "1"])
    rows = {row["target"]: row for row in report["rows"]}
    assert set(rows) == {
        "raw aiohttp",
        "raw httpx",
        "pickllm transport",
        "backend.acomplete",
        "aroute",
        "aroute (httpx transport)",
    }
    assert rows["raw aiohttp"]["ratio_to_aiohttp"] == 1.0
    assert all(row["median_rps"] > 0 for row in rows.values())
