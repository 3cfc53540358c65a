"""docs/grafana/pickllm.json: a well-formed Grafana dashboard whose every PromQL query names
metrics and labels that a live `pickllm serve` exports (its GET /metrics, after real traffic),
and that shows every metric the gateway exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway_servers import KEY, Process, Serve, base_config

DASHBOARD = Path(__file__).parents[2] / "docs" / "grafana" / "pickllm.json"
#: Series prometheus-client adds to every counter and histogram (creation times): not charted.
_CREATED = re.compile(r".*_created$")
_SELECTOR = re.compile(r"\b(pickllm_[a-z0-9_]+)\s*(\{[^}]*\})?")
_MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"')
_GROUPING = re.compile(r"\b(?:by|ignoring|on)\s*\(([^)]*)\)")
_PANELS = {"timeseries", "state-timeline", "stat", "gauge", "table", "bargauge"}


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def queries(board: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]
    return exprs + [v["query"]["query"] for v in board["templating"]["list"]]


def test_the_dashboard_is_a_well_formed_grafana_model() -> None:
    board = dashboard()
    assert board["uid"] == "pickllm-gateway"
    assert isinstance(board["schemaVersion"], int)
    inputs = {i["name"] for i in board["__inputs"]}
    assert inputs == {"DS_PROMETHEUS"}
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        assert panel["type"] in _PANELS
        assert panel["title"]
        assert panel["description"], "every panel says what it shows"
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
        grid = panel["gridPos"]
        assert grid["x"] >= 0
        assert grid["x"] + grid["w"] <= 24
        covered = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not covered & cells, f"{panel['title']} overlaps another panel"
        cells |= covered
        refs = [t["refId"] for t in panel["targets"]]
        assert refs
        assert len(refs) == len(set(refs))
    names = {v["name"] for v in board["templating"]["list"]}
    for expr in queries(board):
        assert expr.count("(") == expr.count(")")
        assert expr.count("{") == expr.count("}")
        for variable in re.findall(r"\$(\w+)", expr):
            assert variable in names or variable.startswith("__"), variable


@pytest.fixture
def exposition(serve: Serve, upstream: str, tmp_path: Path) -> str:
    """A gateway's GET /metrics after traffic that gives every metric a sample."""
    config = (
        base_config(upstream, f'decision_log = "{tmp_path / "log"}"')
        .replace("output_price = 2.0", "output_price = 2.0\nmax_tokens = 100")
        .replace("output_price = 0.5", "output_price = 0.5\nmax_tokens = 100")
    )
    config += '\n[routers.capped]\nmodels = ["good", "bad"]\nbudget = { per_context = 100.0 }\n'
    # Prompt contexts: the state of its mapper (warming up).
    config += '\n[routers.clustered]\nmodels = ["good"]\ncontexts = { kind = "prompts" }\n'
    gateway: Process = serve(config)
    headers = {"Authorization": f"Bearer {KEY}"}
    url = f"{gateway.url}/v1/chat/completions"

    def chat(model: str, **extra: object) -> httpx.Response:
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
        return httpx.post(url, json=body, headers=headers, timeout=30)

    answered = chat("auto")
    assert answered.status_code == 200
    feedback = {"decision": answered.headers["x-pickllm-decision"], "accuracy": 1.0}
    assert httpx.post(
        f"{gateway.url}/v1/feedback", json=feedback, headers=headers, timeout=30
    ).is_success
    assert chat("auto", stream=True).status_code == 200  # time to first token
    assert chat("capped").status_code == 200  # budget spent
    assert chat("broken").status_code == 502  # an upstream failure (passed through)
    return httpx.get(f"{gateway.url}/metrics", timeout=30).text


@pytest.fixture
def exported(exposition: str) -> dict[str, set[str]]:
    """The series names of the exposition, each with the label names it carries."""
    series: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if not _CREATED.match(sample.name):
                series.setdefault(sample.name, set()).update(sample.labels)
    return series


def test_every_query_names_exported_metrics_and_labels(exported: dict[str, set[str]]) -> None:
    used: set[str] = set()
    for expr in queries(dashboard()):
        metrics = _SELECTOR.findall(expr)
        assert metrics, f"no pickllm metric in {expr!r}"
        labels: set[str] = set()
        for name, selector in metrics:
            assert name in exported, f"{name} is not exported by the gateway ({expr!r})"
            used.add(name)
            for label, _ in _MATCHER.findall(selector):
                assert label in exported[name], f"{name} has no label {label!r}"
            labels |= exported[name]
        for grouping in _GROUPING.findall(expr):
            for label in filter(None, (x.strip() for x in grouping.split(","))):
                assert label in labels, f"{label!r} is no label of the metrics of {expr!r}"
    # Every metric the gateway exports is charted (a histogram through its _bucket, _sum or
    # _count series).
    families = {re.sub(r"_(bucket|sum|count)$", "", name) for name in exported}
    charted = {re.sub(r"_(bucket|sum|count)$", "", name) for name in used}
    assert {f for f in families if f.startswith("pickllm_")} <= charted


def test_metric_names_follow_prometheus_conventions(
    exposition: str, exported: dict[str, set[str]]
) -> None:
    for family in text_string_to_metric_families(exposition):
        if family.name.startswith("pickllm_") and family.type == "counter":
            assert {s.name for s in family.samples} - {family.name + "_created"} == {
                family.name + "_total"
            }, f"{family.name}: a counter's samples end in _total"
    for name, labels in exported.items():
        if not name.startswith("pickllm_"):
            continue
        assert re.fullmatch(r"[a-z][a-z0-9_]*", name)
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        if "latency" in name or "ttft" in name:
            assert family.endswith("_seconds"), f"{name}: durations in seconds, named so"
        if "spent" in name:
            assert name.endswith("_usd"), name
        # Client-supplied strings never become label values but through the bounded context.
        assert labels <= {"router", "context", "model", "outcome", "kind", "le"}, name
