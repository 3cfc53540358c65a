"""`make bench-smoke` runs the gateway benchmark once, tiny and untimed: every target starts,
answers, and nothing fails. The figures come from `python benches/gateway/bench.py`."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "gateway" / "bench.py"


def test_gateway_bench_runs(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("gateway_bench", BENCH)
    assert spec is not None
    assert spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    report = bench.main(["--requests", "20", "--levels", "1,4", "--out", str(tmp_path / "g.json")])
    rows = report["rows"]
    assert {r["target"] for r in rows} == {
        "upstream (direct)",
        "bare Starlette pass-through",
        "pickllm serve",
    }
    assert all(r["failures"] == 0 for r in rows)
