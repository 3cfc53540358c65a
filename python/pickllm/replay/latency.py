"""Latency from real measurements: llmperf per-request data, mapped to the models of a pool.

RouterBench records accuracy and cost but no latency. We model the latency of model ``M`` on a
query as one real request of a provider profile, replayed at the query's length::

    latency = ttft + decode_per_token * output_tokens

* ``(ttft, decode_per_token)`` come from one request drawn at random from the profile's measured
  requests (errored requests left out), with a generator seeded per cell, so a replay is
  reproducible and a cell's latency does not change when other models or contexts are selected.
* ``output_tokens`` is estimated from the length of ``M``'s response in the data:
  ``max(1, ceil(characters / 4))`` (:func:`estimate_output_tokens`). Four characters per token is
  the usual rule of thumb for English text with GPT-style BPE tokenizers; it is rough for code and
  single-letter answers (which become 1 token), which is good enough for latency, dominated by TTFT
  for short answers.
* ``decode_per_token`` is ``(end_to_end - ttft) / output_tokens`` of the measured request, not
  llmperf's ``inter_token_latency_s`` field. That field is end-to-end latency divided by the
  number of output tokens (the median of ``end_to_end / (inter_token_latency * tokens)`` is 1.00 to
  1.07 over the 19 files), so it already includes the TTFT: ``ttft + itl * tokens`` would count the
  TTFT twice (groq 70b: 1.00 s instead of the measured 0.81 s; replicate 13b: 13.4 s instead of
  7.8 s). With our split a request replayed at its own length gives back its measured end-to-end
  latency. The reported field is kept as ``RequestSample.reported_itl_s``.

Which profile stands for which model is an assumption (the RouterBench models were not measured by
llmperf): see :data:`DEFAULT_MODEL_PROFILES`, and pass your own mapping to change it. Data that
carries its own latency (the long format) keeps it: :meth:`LatencyModel.apply` only fills cells
whose latency is unknown unless told to overwrite.

Example:
    >>> sample = RequestSample(ttft_s=0.2, decode_s_per_token=0.005, output_tokens=150,
    ...                        end_to_end_s=0.95, reported_itl_s=0.0063)
    >>> round(sample.latency(100), 3)
    0.7
    >>> estimate_output_tokens("The answer is B.")
    4
    >>> profile = ProviderProfile(name="demo_70b", samples=(sample,))
    >>> model = LatencyModel({"demo_70b": profile}, model_profiles={"my-model": "demo_70b"})
    >>> round(model.cell_latency("my-model", 100.0, seed=0, context="math", query_id="q1"), 3)
    0.7
"""

from __future__ import annotations

import json
import math
import random
from array import array
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from pickllm.errors import ConfigError, UnknownModelError
from pickllm.replay._sources import StrPath
from pickllm.replay.errors import DataError
from pickllm.replay.outcomes import Outcomes

__all__ = [
    "CHARS_PER_TOKEN",
    "DEFAULT_MODEL_PROFILES",
    "LatencyModel",
    "ProviderProfile",
    "RequestSample",
    "estimate_output_tokens",
    "load_llmperf_profile",
    "load_llmperf_profiles",
]

#: Characters per output token assumed when estimating tokens from a response's length.
CHARS_PER_TOKEN: Final = 4.0

#: Which llmperf profile (``<provider>_<size>``, a file stem of llmperf's individual/ folder) stands
#: for each RouterBench model. An assumption: llmperf measured Llama-2 7B/13B/70B chat on hosted
#: providers in Dec 2023, not these models. Medians quoted are decode time per token and TTFT of
#: the profile in the shared data.
DEFAULT_MODEL_PROFILES: Final[Mapping[str, str]] = MappingProxyType(
    {
        # GPT-4 Turbo was commonly measured at roughly 20-25 tokens/s in late 2023, the slowest
        # model of the pool; bedrock 70b is the slowest 70B profile with a large sample
        # (101 usable requests; 44 ms/token ~ 23 tok/s, TTFT 0.39 s).
        "gpt-4-1106-preview": "bedrock_70b",
        # gpt-3.5-turbo was OpenAI's fast model: a 70B profile with low TTFT and ~70 tokens/s
        # (anyscale 70b: 0.21 s, 14 ms/token).
        "gpt-3.5-turbo-1106": "anyscale_70b",
        # Claude 2 and Claude 1: large models, slower than gpt-3.5 and faster than GPT-4 Turbo;
        # perplexity 70b sits between them (0.37 s, 31 ms/token ~ 33 tok/s). Same serving
        # generation, so the same profile for both.
        "claude-v2": "perplexity_70b",
        "claude-v1": "perplexity_70b",
        # Claude Instant: Anthropic's small fast model; a 13B profile on a low-TTFT provider
        # (anyscale 13b: 0.20 s, 7 ms/token).
        "claude-instant-v1": "anyscale_13b",
        # The open models' RouterBench costs match Together AI's per-token prices of the time
        # (about $0.9/M tokens for Llama-2-70B, $0.6/M Mixtral, $0.8-1.0/M 34B, $0.3/M 13B,
        # $0.2/M 7B, checked on the shared CSVs with tokens ~ characters / 4): RouterBench ran
        # them there, so they take Together's profiles. The same model on the same provider:
        "meta/llama-2-70b-chat": "together_70b",
        # No 34B profile: 34B is nearer 70B than 13B on a log scale (x2.1 vs x2.6), and the larger
        # profile errs on the slow side.
        "meta/code-llama-instruct-34b-chat": "together_70b",
        "zero-one-ai/Yi-34B-Chat": "together_70b",
        # Mixtral 8x7B has 47B parameters but ~13B active per token: decoding speed follows the
        # active parameters, so a 13B profile. Note: together 13b holds one request (of 149)
        # with a 100 s TTFT, a real stall kept on purpose; it lifts the *mean* latency of the two
        # models mapped here (~1.5-1.9 s instead of ~0.6 s on one-token answers), not the median.
        "mistralai/mixtral-8x7b-chat": "together_13b",
        "mistralai/mistral-7b-chat": "together_7b",
        # WizardLM-13B V1.2 is a Llama-2-13B fine-tune: the same architecture as the profile.
        "WizardLM/WizardLM-13B-V1.2": "together_13b",
    }
)


def estimate_output_tokens(text: str) -> int:
    """Output tokens of a response: ``max(1, ceil(len(text) / CHARS_PER_TOKEN))``.

    At least one token: even an empty answer costs a first token (and the TTFT).

    >>> estimate_output_tokens(""), estimate_output_tokens("A"), estimate_output_tokens("x" * 9)
    (1, 1, 3)
    """
    return max(1, math.ceil(len(text) / CHARS_PER_TOKEN))


@dataclass(frozen=True)
class RequestSample:
    """One measured request of a provider profile (see the module docstring for the split)."""

    ttft_s: float
    decode_s_per_token: float
    output_tokens: int
    end_to_end_s: float
    reported_itl_s: float

    def latency(self, output_tokens: float) -> float:
        """This request's latency replayed at ``output_tokens`` tokens, in seconds."""
        return self.ttft_s + self.decode_s_per_token * output_tokens


@dataclass(frozen=True)
class ProviderProfile:
    """The usable requests of one llmperf file, and how many were left out and why."""

    name: str
    samples: tuple[RequestSample, ...]
    skipped: Mapping[str, int] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        if not self.samples:
            raise DataError(
                f"profile {self.name!r} has no usable request", path=self.source or None
            )
        object.__setattr__(self, "skipped", MappingProxyType(dict(self.skipped)))

    def sample(self, rng: random.Random) -> RequestSample:
        """One request drawn uniformly with ``rng``."""
        return self.samples[rng.randrange(len(self.samples))]


def load_llmperf_profile(path: StrPath) -> ProviderProfile:
    """One llmperf ``individual/<provider>_<size>.json`` file: a JSON list of request records.

    Requests with an ``error_code`` or an ``error_msg`` are skipped (``skipped["errored"]``), as
    are records without finite ``ttft_s`` / ``end_to_end_latency_s`` / ``inter_token_latency_s`` /
    ``number_output_tokens`` >= 1 or with end-to-end below TTFT (``skipped["malformed"]``).

    Example:
        >>> profile = load_llmperf_profile("../shared/data/llmperf/individual/groq_70b.json")
        ... # doctest: +SKIP
        >>> profile.name, len(profile.samples)  # doctest: +SKIP
        ('groq_70b', 150)
    """
    file = Path(path)
    try:
        records = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"not a JSON file: {exc}", path=str(file)) from None
    if not isinstance(records, list):
        raise DataError(
            f"expected a JSON list of requests, got {type(records).__name__}", path=str(file)
        )
    samples: list[RequestSample] = []
    skipped: Counter[str] = Counter()
    for record in records:
        if not isinstance(record, dict):
            skipped["malformed"] += 1
        elif record.get("error_code") not in (None, 0) or record.get("error_msg"):
            skipped["errored"] += 1
        elif (sample := _request(record)) is None:
            skipped["malformed"] += 1
        else:
            samples.append(sample)
    if not samples:
        raise DataError(f"no usable request among {len(records)} ({dict(skipped)})", path=str(file))
    return ProviderProfile(file.stem, tuple(samples), skipped, str(file))


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _request(record: dict[str, Any]) -> RequestSample | None:
    ttft = _finite(record.get("ttft_s"))
    e2e = _finite(record.get("end_to_end_latency_s"))
    itl = _finite(record.get("inter_token_latency_s"))
    tokens = _finite(record.get("number_output_tokens"))
    if ttft is None or e2e is None or itl is None or tokens is None:
        return None
    if ttft < 0 or e2e < ttft or itl < 0 or tokens < 1 or tokens != int(tokens):
        return None
    return RequestSample(ttft, (e2e - ttft) / tokens, int(tokens), e2e, itl)


def load_llmperf_profiles(folder: StrPath) -> dict[str, ProviderProfile]:
    """Every ``*.json`` of an llmperf ``individual/`` folder, keyed by file stem, sorted."""
    directory = Path(folder)
    if not directory.is_dir():
        raise FileNotFoundError(f"no such folder: {directory}")
    files = sorted(directory.glob("*.json"))
    if not files:
        raise DataError("no *.json llmperf file in this folder", path=str(directory))
    return {p.stem: load_llmperf_profile(p) for p in files}


@dataclass(frozen=True)
class LatencyModel:
    """Latency of each model from a provider profile (see the module docstring).

    ``model_profiles`` maps model names to profile names; a model not in it uses
    ``default_profile`` if set, else is an error. Mapped profiles must exist in ``profiles``.
    """

    profiles: Mapping[str, ProviderProfile]
    model_profiles: Mapping[str, str] = field(default_factory=lambda: DEFAULT_MODEL_PROFILES)
    default_profile: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "profiles", MappingProxyType(dict(self.profiles)))
        object.__setattr__(self, "model_profiles", MappingProxyType(dict(self.model_profiles)))
        wanted = dict(self.model_profiles)
        if self.default_profile is not None:
            wanted["(default_profile)"] = self.default_profile
        unknown = {m: p for m, p in wanted.items() if p not in self.profiles}
        if unknown:
            raise ConfigError(
                f"latency profiles not loaded: {unknown}; loaded: {sorted(self.profiles)}"
            )

    @classmethod
    def from_llmperf(
        cls,
        folder: StrPath,
        model_profiles: Mapping[str, str] = DEFAULT_MODEL_PROFILES,
        *,
        default_profile: str | None = None,
    ) -> LatencyModel:
        """Profiles from an llmperf ``individual/`` folder, with the given mapping.

        Example:
            >>> model = LatencyModel.from_llmperf("../shared/data/llmperf/individual")
            ... # doctest: +SKIP
            >>> model.profile_for("gpt-4-1106-preview").name  # doctest: +SKIP
            'bedrock_70b'
        """
        return cls(load_llmperf_profiles(folder), model_profiles, default_profile=default_profile)

    def profile_for(self, model: str) -> ProviderProfile:
        """The profile standing for ``model``; UnknownModelError if it has none."""
        name = self.model_profiles.get(model, self.default_profile)
        if name is None:
            raise UnknownModelError(
                f"no latency profile for model {model!r}: add it to model_profiles or set "
                f"default_profile (mapped models: {sorted(self.model_profiles)})"
            )
        return self.profiles[name]

    def sample(self, model: str, output_tokens: float, rng: random.Random) -> float:
        """One latency draw for ``model`` answering with ``output_tokens`` tokens, using ``rng``."""
        return self.profile_for(model).sample(rng).latency(output_tokens)

    def cell_latency(
        self, model: str, output_tokens: float, *, seed: int, context: str, query_id: str
    ) -> float:
        """The latency :meth:`apply` gives this cell: one draw seeded by its coordinates.

        Seeding per cell (a string seed, hashed with SHA-512 by ``random.Random``, independent of
        PYTHONHASHSEED) makes the value independent of which other cells are replayed.
        """
        rng = random.Random(f"{seed}\x1f{context}\x1f{query_id}\x1f{model}")
        return self.sample(model, output_tokens, rng)

    def apply(
        self,
        outcomes: Outcomes,
        *,
        seed: int,
        overwrite: bool = False,
        fallback_output_tokens: float | None = None,
    ) -> Outcomes:
        """A copy of ``outcomes`` with unknown latencies sampled (all of them if ``overwrite``).

        A cell's output tokens come from the data; where unknown, ``fallback_output_tokens`` is
        used if given, else DataError naming the cell. Latency the data already has is kept.
        """
        if fallback_output_tokens is not None and not (0 <= fallback_output_tokens < math.inf):
            raise ConfigError(
                f"fallback_output_tokens must be finite and >= 0, got {fallback_output_tokens!r}"
            )
        m = len(outcomes.models)
        result = outcomes
        for block in outcomes.contexts:
            latency = array("d", block.latency)
            for i, present in enumerate(block.mask):
                if not present or not (overwrite or math.isnan(latency[i])):
                    continue
                q, j = divmod(i, m)
                tokens = block.output_tokens[i]
                if math.isnan(tokens):
                    if fallback_output_tokens is None:
                        raise DataError(
                            f"context {block.name!r}, query {block.query_ids[q]!r}, model "
                            f"{outcomes.models[j]!r}: neither latency nor output tokens are "
                            "known; pass fallback_output_tokens to assume a length"
                        )
                    tokens = fallback_output_tokens
                latency[i] = self.cell_latency(
                    outcomes.models[j],
                    tokens,
                    seed=seed,
                    context=block.name,
                    query_id=block.query_ids[q],
                )
            result = result.replace_context(replace(block, latency=latency))
        return result
