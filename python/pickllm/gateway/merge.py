"""One ``GET /v1/stats`` over every worker of ``pickllm serve --workers N``.

The worker that answers asks the others for their snapshots (over the peers' sockets, see
:mod:`pickllm.gateway.peers`) with the raw data merging needs, and merges them with its own:

* counts add up (decisions, per model and context, pending feedback, untracked decisions), and
  shares are recomputed from the sums;
* cost and latency percentiles are over the union of the workers' windows (each worker's last
  ``WINDOW`` settled calls per model);
* reward and accuracy moving averages are the workers' averages weighted by their observations
  (at most ``1 / ALPHA``, the averages' span);
* a context's probabilities are the workers' weighted by their decisions in it: the chance that
  the gateway's next request of that context goes to each model, traffic spread as it was; the
  leader and convergence follow from them;
* a breaker is as open as it is on any worker; detected changes and budget spend add up, unless
  the router has shared state (then every worker sees the same ones: the largest is kept);
* a context's time series (``recent``, ``samples``, ``last_changes``) cannot be interleaved (they
  carry no common clock per decision): they are those of the worker that saw most of its
  decisions, named by ``series_worker``.
"""

from __future__ import annotations

from typing import Any, Final

from pickllm.gateway.stats import ALPHA, CONVERGED, quantile

__all__ = ["merge_snapshots"]

_BREAKER_ORDER: Final = {"closed": 0, "half_open": 1, "open": 2}


def _average(parts: list[list[float]]) -> float | None:
    weights = [(min(n, 1.0 / ALPHA), value) for n, value in parts if n]
    total = sum(w for w, _ in weights)
    return sum(w * v for w, v in weights) / total if total else None


def _models(entries: list[dict[str, dict[str, Any]]], total: int) -> dict[str, dict[str, Any]]:
    """One scope's per-model stats, merged from the workers' (with ``_raw``)."""
    out: dict[str, dict[str, Any]] = {}
    for model in entries[0]:
        parts = [e[model] for e in entries]
        decisions = sum(p["decisions"] for p in parts)
        costs = [c for p in parts for c in p["_raw"]["costs"]]
        latencies = [x for p in parts for x in p["_raw"]["latencies"]]
        out[model] = {
            "decisions": decisions,
            "share": decisions / total if total else None,
            "reward_avg": _average([p["_raw"]["reward"] for p in parts]),
            "accuracy_avg": _average([p["_raw"]["accuracy"] for p in parts]),
            "cost_p50": quantile(costs, 0.5),
            "cost_p99": quantile(costs, 0.99),
            "latency_p50": quantile(latencies, 0.5),
            "latency_p99": quantile(latencies, 0.99),
        }
    return out


def _context(found: list[tuple[str, dict[str, Any]]], shared: bool) -> dict[str, Any]:
    """One context, merged from the workers that track it: (token, entry) pairs."""
    decisions = sum(e["decisions"] for _, e in found)
    models = list(found[0][1]["probabilities"])
    probabilities = {
        m: sum(e["decisions"] * e["probabilities"][m] for _, e in found) / decisions for m in models
    }
    top = max(probabilities, key=probabilities.__getitem__)
    changes = [e["changes"] for _, e in found]
    entry: dict[str, Any] = {
        "decisions": decisions,
        "probabilities": probabilities,
        "converged": probabilities[top] >= CONVERGED,
        "leader": top,
        "changes": max(changes) if shared else sum(changes),
        "models": _models([e["models"] for _, e in found], decisions),
    }
    busiest, series = max(found, key=lambda pair: pair[1]["decisions"])
    if "recent" in series:
        for key in ("recent", "samples", "sample_every", "last_changes"):
            entry[key] = series[key]
        entry["series_worker"] = busiest
    return entry


def _router(found: list[tuple[str, dict[str, Any]]], one_context: bool) -> dict[str, Any]:
    routers = [r for _, r in found]
    first = routers[0]
    shared = bool(first.get("_shared"))
    decisions = sum(r["decisions"] for r in routers)
    names: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for token, r in found:
        for name, entry in r["contexts"].items():
            names.setdefault(name, []).append((token, entry))
    contexts = {name: _context(parts, shared) for name, parts in names.items()}
    spent = [r["budget_spent_usd"] for r in routers if r["budget_spent_usd"] is not None]
    changes = [r["changes"] for r in routers]
    return {
        "models": first["models"],
        "decisions": decisions,
        "pending_feedback": sum(r["pending_feedback"] for r in routers),
        "breakers": {
            m: max((r["breakers"][m] for r in routers), key=_BREAKER_ORDER.__getitem__)
            for m in first["models"]
        },
        "budget_spent_usd": (max(spent) if shared else sum(spent)) if spent else None,
        # Asked for one context, each worker counts its own: at least the largest are tracked.
        "contexts_tracked": (
            max(r["contexts_tracked"] for r in routers) if one_context else len(contexts)
        ),
        "untracked_decisions": sum(r["untracked_decisions"] for r in routers),
        "contexts_converged": (
            None if one_context else sum(1 for c in contexts.values() if c["converged"])
        ),
        "changes": max(changes) if shared else sum(changes),
        "prompt_contexts": first["prompt_contexts"],
        "totals": _models([r["totals"] for r in routers], decisions),
        "contexts": contexts,
    }


def merge_snapshots(snapshots: dict[str, dict[str, Any]], *, one_context: bool) -> dict[str, Any]:
    """Merge the workers' raw snapshots (by worker token, the answering worker's first) into
    the JSON of ``GET /v1/stats``; ``one_context``: they were asked for one context."""
    tokens = list(snapshots)
    first = snapshots[tokens[0]]
    routers = {
        name: _router([(t, snapshots[t]["routers"][name]) for t in tokens], one_context)
        for name in first["routers"]
    }
    return {"version": first["version"], "time": first["time"], "routers": routers}
