"""Memory a judge router keeps for decisions waiting for feedback: the gateway's RSS before and
after 100 routed requests of 900 kB each (feedback_timeout long, so all wait), at the judge's
default ``max_kept_bytes`` and at a bound too large to matter (what the gateway kept before
there was one). The upstream is tests/gateway/upstream.py (it echoes the question).

    python benches/gateway/judge_memory.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from gateway_servers import UPSTREAM, start  # noqa: E402
from servers import free_port  # noqa: E402

REQUESTS = 100
CHARS = 900_000


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def measure(kept: int, folder: Path) -> tuple[float, float]:
    up = free_port()
    upstream = start(
        [sys.executable, str(UPSTREAM), str(up)], f"http://127.0.0.1:{up}/_stats", folder / "u.log"
    )
    config = folder / "pickllm.toml"
    config.write_text(f"""
[server]
max_body_bytes = 8388608
[models.m]
base_url = "http://127.0.0.1:{up}/v1"
[models.judge]
base_url = "http://127.0.0.1:{up}/v1"
model_id = "judge-9"
[routers.r]
models = ["m"]
feedback_timeout = 600.0
judge = {{ model = "judge", max_kept_bytes = {kept} }}
""")
    port = free_port()
    gateway = start(
        [sys.executable, "-m", "pickllm", "serve", "--config", str(config), "--port", str(port)],
        f"http://127.0.0.1:{port}/readyz",
        folder / "g.log",
    )
    try:
        before = rss_mb(gateway.pid)
        body = json.dumps({"model": "r", "messages": [{"role": "user", "content": "q" * CHARS}]})
        with httpx.Client(timeout=120) as client:
            for _ in range(REQUESTS):
                response = client.post(
                    f"http://127.0.0.1:{port}/v1/chat/completions",
                    content=body,
                    headers={"Content-Type": "application/json"},
                )
                response.raise_for_status()
        return before, rss_mb(gateway.pid)
    finally:
        for process in (gateway, upstream):
            process.terminate()
            process.wait()


def main() -> None:
    for kept in (64 * 1024, 16_000_000):
        with tempfile.TemporaryDirectory() as folder:
            before, after = measure(kept, Path(folder))
        print(
            f"max_kept_bytes={kept}: RSS {before:.0f} MB -> {after:.0f} MB "
            f"after {REQUESTS} requests of {CHARS / 1e3:.0f} kB"
        )


if __name__ == "__main__":
    main()
