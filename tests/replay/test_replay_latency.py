"""Latency model: llmperf profiles, the model-to-profile mapping, seeded sampling."""

from __future__ import annotations

import json
import math
import random
import statistics
from array import array
from pathlib import Path

import pytest

from pickllm.errors import ConfigError, UnknownModelError
from pickllm.replay import (
    DEFAULT_MODEL_PROFILES,
    ContextOutcomes,
    DataError,
    LatencyModel,
    Loaded,
    Outcomes,
    ProviderProfile,
    RequestSample,
    estimate_output_tokens,
    load_llmperf_profile,
    load_llmperf_profiles,
)

#: Medians from data/README.md: TTFT (s), llmperf's inter-token latency (s), end-to-end (s).
README_MEDIANS = {
    "groq_70b": (0.22, 0.0053, 0.81),
    "together_70b": (0.64, 0.015, 2.44),
    "bedrock_70b": (0.39, 0.046, 6.99),
}


def test_profiles_load_and_skip_errored_requests(llmperf_dir: Path) -> None:
    profiles = load_llmperf_profiles(llmperf_dir)
    assert len(profiles) == 19
    assert list(profiles) == sorted(profiles)
    assert len(profiles["groq_70b"].samples) == 150
    assert profiles["groq_70b"].skipped == {}
    # bedrock 70b has 49 requests with error_code -100, lepton 130 rate-limited (429) of 150.
    assert dict(profiles["bedrock_70b"].skipped) == {"errored": 49}
    assert len(profiles["bedrock_70b"].samples) == 101
    assert dict(profiles["lepton_70b"].skipped) == {"errored": 130}
    for profile in profiles.values():
        for s in profile.samples:
            assert 0 <= s.ttft_s <= s.end_to_end_s
            assert s.decode_s_per_token >= 0
            assert s.output_tokens >= 1


@pytest.mark.parametrize("name", sorted(README_MEDIANS))
def test_profile_medians_match_readme(llmperf_dir: Path, name: str) -> None:
    profile = load_llmperf_profile(llmperf_dir / f"{name}.json")
    ttft, itl, e2e = README_MEDIANS[name]
    median = statistics.median
    # The README rounds to 2 significant digits: half a unit of the last digit, plus a hair.
    assert median(s.ttft_s for s in profile.samples) == pytest.approx(ttft, abs=0.0051)
    assert median(s.reported_itl_s for s in profile.samples) == pytest.approx(itl, rel=0.05)
    assert median(s.end_to_end_s for s in profile.samples) == pytest.approx(e2e, abs=0.0051)


@pytest.mark.parametrize("name", sorted(README_MEDIANS))
def test_sampled_latency_reproduces_measured_end_to_end(llmperf_dir: Path, name: str) -> None:
    profile = load_llmperf_profile(llmperf_dir / f"{name}.json")
    e2e = README_MEDIANS[name][2]
    rng = random.Random(7)
    draws = [profile.sample(rng) for _ in range(2000)]
    # Replayed at its own length, a request gives back its measured latency: the median of 2000
    # draws then differs from the README's only by rounding (<0.7%) and resampling noise (~1%).
    own = statistics.median(d.latency(d.output_tokens) for d in draws)
    assert own == pytest.approx(e2e, rel=0.02)
    # At 150 tokens (the benchmark's target length; the measured medians are 150 to 157 tokens,
    # so up to 7 tokens x 11 ms = 3% less for together) the model stays within 6%.
    at_150 = statistics.median(d.latency(150) for d in draws)
    assert at_150 == pytest.approx(e2e, rel=0.06)
    # llmperf's inter_token_latency_s already includes the TTFT (it is end-to-end / tokens):
    # ttft + itl * tokens would overshoot by ~20% on low-TTFT-share profiles. Guard the choice.
    naive = statistics.median(d.ttft_s + d.reported_itl_s * 150 for d in draws)
    if name != "bedrock_70b":  # on bedrock the TTFT is only 6% of the total
        assert naive > 1.15 * e2e


def test_sampling_is_deterministic_per_seed(
    routerbench: Loaded, latency_model: LatencyModel
) -> None:
    outcomes = routerbench.outcomes.select(contexts=["mbpp"])
    first = latency_model.apply(outcomes, seed=3)
    again = latency_model.apply(outcomes, seed=3)
    other = latency_model.apply(outcomes, seed=4)
    assert first == again
    assert first.latency_complete
    assert not outcomes.latency_complete
    lat3, lat4 = first.context("mbpp").latency, other.context("mbpp").latency
    differ = sum(a != b for a, b in zip(lat3, lat4, strict=True))
    assert differ > 0.9 * len(lat3)  # another seed draws other requests almost everywhere
    # Only latency changes.
    assert first.context("mbpp").accuracy == outcomes.context("mbpp").accuracy


def test_cell_latency_independent_of_selection(
    routerbench: Loaded, latency_model: LatencyModel
) -> None:
    pool = ["gpt-4-1106-preview", "mistralai/mistral-7b-chat"]
    full = latency_model.apply(routerbench.outcomes, seed=11)
    subset = latency_model.apply(routerbench.outcomes.select(models=pool), seed=11)
    assert full.select(models=pool) == subset


def test_latency_grows_with_tokens_and_follows_mapping(latency_model: LatencyModel) -> None:
    def latency(model: str, tokens: float) -> float:
        return latency_model.cell_latency(model, tokens, seed=0, context="c", query_id="q")

    for model in DEFAULT_MODEL_PROFILES:
        assert latency(model, 1) < latency(model, 100) < latency(model, 1000)
    # Same cell, so same request drawn: the difference is exactly the decode time.
    sample = latency_model.profile_for("gpt-4-1106-preview").sample(
        random.Random("0\x1fc\x1fq\x1fgpt-4-1106-preview")
    )
    assert latency("gpt-4-1106-preview", 300) == sample.latency(300)
    # GPT-4 Turbo (bedrock 70b profile) decodes long answers far slower than gpt-3.5 (anyscale).
    gpt4 = [latency_model.sample("gpt-4-1106-preview", 300, random.Random(i)) for i in range(200)]
    gpt35 = [latency_model.sample("gpt-3.5-turbo-1106", 300, random.Random(i)) for i in range(200)]
    assert statistics.median(gpt4) > 2 * statistics.median(gpt35)


def test_default_mapping_covers_routerbench(
    latency_model: LatencyModel, routerbench_models: frozenset[str], llmperf_dir: Path
) -> None:
    assert set(DEFAULT_MODEL_PROFILES) == routerbench_models
    available = {p.stem for p in llmperf_dir.glob("*.json")}
    assert set(DEFAULT_MODEL_PROFILES.values()) <= available
    assert latency_model.profile_for("meta/llama-2-70b-chat").name == "together_70b"
    assert latency_model.profile_for("mistralai/mixtral-8x7b-chat").name == "together_13b"


def test_mapping_is_configurable_and_checked(latency_model: LatencyModel) -> None:
    profiles = latency_model.profiles
    custom = LatencyModel(profiles, {"my-llama": "groq_70b"}, default_profile="together_7b")
    assert custom.profile_for("my-llama").name == "groq_70b"
    assert custom.profile_for("anything-else").name == "together_7b"
    strict = LatencyModel(profiles, {"my-llama": "groq_70b"})
    with pytest.raises(UnknownModelError, match="no latency profile for model 'gpt-4-1106"):
        strict.profile_for("gpt-4-1106-preview")
    with pytest.raises(ConfigError, match="not loaded"):
        LatencyModel(profiles, {"x": "groq_7b"})
    with pytest.raises(ConfigError, match="default_profile"):
        LatencyModel(profiles, {}, default_profile="nowhere_1b")


def _tiny(latency: float, tokens: float) -> Outcomes:
    nan = math.nan
    block = ContextOutcomes(
        name="c",
        query_ids=("q",),
        n_models=2,
        accuracy=array("d", [1.0, nan]),
        cost=array("d", [0.1, nan]),
        latency=array("d", [latency, nan]),
        output_tokens=array("d", [tokens, nan]),
        mask=array("B", [1, 0]),
    )
    return Outcomes(models=("m", "n"), contexts=(block,))


def test_apply_keeps_data_latency_unless_overwrite() -> None:
    sample = RequestSample(0.5, 0.01, 100, 1.5, 0.015)
    model = LatencyModel({"p": ProviderProfile("p", (sample,))}, {"m": "p", "n": "p"})
    has_latency = _tiny(3.25, 40.0)
    assert model.apply(has_latency, seed=0) == has_latency
    overwritten = model.apply(has_latency, seed=0, overwrite=True)
    assert overwritten.context("c").latency[0] == pytest.approx(0.5 + 0.01 * 40)
    assert math.isnan(overwritten.context("c").latency[1])  # missing cells stay missing
    unknown = _tiny(math.nan, math.nan)
    with pytest.raises(DataError, match="neither latency nor output tokens"):
        model.apply(unknown, seed=0)
    filled = model.apply(unknown, seed=0, fallback_output_tokens=10)
    assert filled.context("c").latency[0] == pytest.approx(0.5 + 0.01 * 10)
    with pytest.raises(ConfigError):
        model.apply(unknown, seed=0, fallback_output_tokens=-1)


def test_output_token_rule() -> None:
    assert estimate_output_tokens("") == 1
    assert estimate_output_tokens("B") == 1
    assert estimate_output_tokens("abcd") == 1
    assert estimate_output_tokens("abcde") == 2
    assert estimate_output_tokens("x" * 400) == 100


def test_malformed_llmperf_files(tmp_path: Path) -> None:
    good = {"ttft_s": 0.2, "end_to_end_latency_s": 1.2, "inter_token_latency_s": 0.008}
    records = [
        {**good, "number_output_tokens": 100, "error_code": None, "error_msg": ""},
        {**good, "number_output_tokens": 100, "error_code": 429, "error_msg": "rate limited"},
        {**good, "number_output_tokens": 0},
        {**good, "number_output_tokens": 100, "ttft_s": "fast"},
        {**good, "number_output_tokens": 100, "end_to_end_latency_s": 0.1},
        "not a record",
    ]
    path = tmp_path / "prov_7b.json"
    path.write_text(json.dumps(records))
    profile = load_llmperf_profile(path)
    assert profile.name == "prov_7b"
    assert len(profile.samples) == 1
    assert dict(profile.skipped) == {"errored": 1, "malformed": 4}
    assert profile.samples[0].decode_s_per_token == pytest.approx(0.01)

    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match=r"bad\.json: not a JSON file"):
        load_llmperf_profile(tmp_path / "bad.json")
    (tmp_path / "obj.json").write_text("{}")
    with pytest.raises(DataError, match="expected a JSON list"):
        load_llmperf_profile(tmp_path / "obj.json")
    (tmp_path / "all_errors.json").write_text(json.dumps(records[1:3]))
    with pytest.raises(DataError, match="no usable request"):
        load_llmperf_profile(tmp_path / "all_errors.json")
    with pytest.raises(FileNotFoundError):
        load_llmperf_profiles(tmp_path / "nowhere")
