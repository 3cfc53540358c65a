"""Build pickllm's default replay scenario from the recorded data in ../shared/data.

    python scripts/build_scenario.py ../shared/data > python/pickllm/replay/scenarios/default.json

Per context (RouterBench's eval_name) and model of the pool, over the queries every pool model
answered: mean correctness and mean cost per query from RouterBench; latency from llmperf requests
replayed at each answer's length (pickllm.replay.LatencyModel, its default model-to-provider
mapping, seed 0), summarized as a log-normal: the median, and sigma = (ln p84 - ln p16) / 2, which
is robust to the few stalled requests in the llmperf data.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from pathlib import Path

from pickllm.replay import LatencyModel, load_routerbench

POOL = (
    "gpt-4-1106-preview",
    "mistralai/mixtral-8x7b-chat",
    "meta/llama-2-70b-chat",
    "mistralai/mistral-7b-chat",
)


def quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def main(data: Path) -> None:
    outcomes, _ = load_routerbench(data / "routerbench", models=list(POOL))
    latency = LatencyModel.from_llmperf(data / "llmperf" / "individual")
    outcomes = latency.apply(outcomes, seed=0).complete()
    contexts: dict[str, dict[str, dict[str, float]]] = {}
    for block in outcomes.contexts:
        figures = {}
        for j, model in enumerate(POOL):
            cells = range(j, len(block.accuracy), len(POOL))
            logs = [math.log(block.latency[i]) for i in cells]
            figures[model] = {
                "accuracy": round(statistics.fmean(block.accuracy[i] for i in cells), 4),
                "cost": float(f"{statistics.fmean(block.cost[i] for i in cells):.4g}"),
                "latency_median": round(math.exp(statistics.median(logs)), 3),
                "latency_sigma": round((quantile(logs, 0.84) - quantile(logs, 0.16)) / 2, 3),
            }
        contexts[block.name] = figures
    scenario = {
        "name": "default",
        "description": (
            "A 4-model pool like the paper's (one expensive frontier model, three open models) on "
            "three RouterBench contexts: per model and context, mean accuracy and mean cost per "
            "query from RouterBench, and a log-normal latency from llmperf requests replayed at "
            "each answer's length. Built by scripts/build_scenario.py."
        ),
        "sources": [
            "RouterBench (Hu et al., arXiv 2403.12031), zero-shot split as redistributed by "
            "shuhao02/RouterDC datasets/routerbench_zs (snapshot 0e63989): arc_challenge, mbpp, "
            "winograde, train and test",
            "llmperf-leaderboard (ray-project, raw_data/individual, snapshot 27aa9b6, Dec 2023): "
            "per-request TTFT and end-to-end latency of Llama-2 chat models on hosted providers",
            "model-to-provider latency mapping: pickllm.replay.latency.DEFAULT_MODEL_PROFILES",
        ],
        "models": list(POOL),
        "contexts": contexts,
    }
    json.dump(scenario, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data"))
