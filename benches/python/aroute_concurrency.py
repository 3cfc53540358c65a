"""`Router.aroute` under 100 concurrent tasks, against raw HTTP clients, side by side in one run.

One instant local OpenAI-compatible server (tests/gateway/upstream.py, aiohttp, a subprocess)
answers every target; each target sends the same chat completion request in closed loop from
``--concurrency`` tasks until ``--requests`` are done, and reads and decodes the JSON answer:

- ``raw aiohttp``: ``aiohttp.ClientSession.post`` (the baseline of issue 14);
- ``raw httpx``: ``httpx.AsyncClient.post`` with its own transport;
- ``pickllm transport``: the backends' aiohttp transport alone (``AiohttpTransport.send``, the
  body read and the reply closed), the same pre-encoded body: what the layers above it add is
  the difference to the next two;
- ``backend.acomplete``: one ``OpenAICompatible`` backend's call, no router;
- ``aroute``: a Router over two models of that backend, on its default async pool (pickllm's
  aiohttp transport);
- ``aroute (httpx transport)``: the same, with an injected ``httpx.AsyncClient``.

Targets run in turn, ``--rounds`` times (interleaved, so that a busy moment of a shared machine
hits every target alike); each reports its median rate over the rounds and its ratio to raw
aiohttp's median rate, and the CPU time of this (client) process per request: the server runs in
its own process, so a target faster than the server shows it in CPU, not in rate; the server's
CPU per request is read from /proc (Linux).

    python benches/python/aroute_concurrency.py [--requests 3000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from gateway_servers import UPSTREAM, start  # noqa: E402
from pickllm import Router  # noqa: E402
from pickllm.backends import OpenAICompatible  # noqa: E402
from pickllm.backends._pools import _shared_ssl_context  # noqa: E402
from pickllm.backends._transport import AiohttpTransport  # noqa: E402
from pickllm.models import Model  # noqa: E402
from servers import free_port  # noqa: E402

PROMPT = "Name the largest planet."
BODY = {"model": "m1", "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 50}

#: One request: returns the answer's text (checked, so that no target skips the decoding).
Send = Callable[[], Awaitable[str]]


async def closed_loop(send: Send, concurrency: int, requests: int) -> tuple[float, float]:
    """Requests per second of ``concurrency`` tasks sending back to back until ``requests``, and
    the CPU seconds this process spent per request (the server's are its own process's)."""
    remaining = requests

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            text = await send()
            if not text.startswith("m"):
                raise AssertionError(f"unexpected answer {text!r}")

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return requests / (time.perf_counter() - started), (time.process_time() - cpu) / requests


class Targets:
    """The four ways to send the request, each with its client open for the whole run."""

    def __init__(self, base: str, concurrency: int) -> None:
        self.url = base + "/chat/completions"
        self.concurrency = concurrency

    async def __aenter__(self) -> Targets:
        connector = aiohttp.TCPConnector(limit=self.concurrency)
        self.session = aiohttp.ClientSession(connector=connector)
        limits = httpx.Limits(max_connections=self.concurrency)
        self.httpx = httpx.AsyncClient(limits=limits)
        self.injected = httpx.AsyncClient(limits=limits)
        base = self.url.rsplit("/chat/completions", 1)[0]
        self.transport = AiohttpTransport(limits=limits, ssl_context=_shared_ssl_context())
        self.backend = OpenAICompatible(base_url=base, api_key_env=None, limits=limits)
        self.fast = self._router(self.backend)
        self.slow = self._router(
            OpenAICompatible(base_url=base, api_key_env=None, async_http_client=self.injected)
        )
        return self

    @staticmethod
    def _router(backend: OpenAICompatible) -> Router:
        models = [Model(name, backend=backend, max_tokens=50) for name in ("m1", "m2")]
        return Router(models, seed=1)

    async def __aexit__(self, *exc: object) -> None:
        await self.fast.aclose()
        await self.transport.aclose()
        await self.slow.aclose()
        await self.injected.aclose()
        await self.httpx.aclose()
        await self.session.close()

    def sends(self) -> dict[str, Send]:
        payload = json.dumps(BODY).encode()
        headers = {"Content-Type": "application/json"}

        async def raw_aiohttp() -> str:
            async with self.session.post(self.url, data=payload, headers=headers) as response:
                data = json.loads(await response.read())
            return str(data["choices"][0]["message"]["content"])

        async def raw_httpx() -> str:
            response = await self.httpx.post(self.url, content=payload, headers=headers)
            return str(response.json()["choices"][0]["message"]["content"])

        backend = self.backend
        messages: list[Any] = [{"role": "user", "content": PROMPT}]
        transport = self.transport
        # What aroute passes by default: its 30 s deadline (aiohttp's total timer, as raw
        # aiohttp's 5 min default) and its 8 MiB cap.
        deadline, cap = 30.0, 8 * 1024 * 1024

        async def pickllm_transport() -> str:
            reply = await transport.send(
                "POST",
                self.url,
                headers=headers,
                body=payload,
                timeouts={},
                deadline=time.monotonic() + deadline,
                decompress=True,
            )
            try:
                data = json.loads(await reply.read(len))
            finally:
                await reply.aclose()
            return str(data["choices"][0]["message"]["content"])

        async def backend_acomplete() -> str:
            answer = await backend.acomplete(
                messages,
                model="m1",
                max_tokens=50,
                deadline=time.monotonic() + deadline,
                max_response_bytes=cap,
            )
            return answer.text

        async def aroute() -> str:
            return (await self.fast.aroute(PROMPT)).text

        async def aroute_httpx() -> str:
            return (await self.slow.aroute(PROMPT)).text

        return {
            "raw aiohttp": raw_aiohttp,
            "raw httpx": raw_httpx,
            "pickllm transport": pickllm_transport,
            "backend.acomplete": backend_acomplete,
            "aroute": aroute,
            "aroute (httpx transport)": aroute_httpx,
        }


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(
    base: str, server_pid: int, concurrency: int, requests: int, rounds: int
) -> dict[str, Any]:
    async with Targets(base, concurrency) as targets:
        sends = targets.sends()
        for send in sends.values():  # warm up: connections open, caches filled
            await closed_loop(send, concurrency, concurrency * 2)
        rates: dict[str, list[float]] = {name: [] for name in sends}
        cpus: dict[str, list[float]] = {name: [] for name in sends}
        server_cpus: dict[str, list[float]] = {name: [] for name in sends}
        for _ in range(rounds):
            for name, send in sends.items():
                server_before = process_cpu(server_pid)
                rate, cpu = await closed_loop(send, concurrency, requests)
                server_cpus[name].append((process_cpu(server_pid) - server_before) / requests)
                rates[name].append(rate)
                cpus[name].append(cpu)
    baseline = statistics.median(rates["raw aiohttp"])
    baseline_cpu = statistics.median(cpus["raw aiohttp"])
    rows = [
        {
            "target": name,
            "median_rps": statistics.median(values),
            "min_rps": min(values),
            "max_rps": max(values),
            "ratio_to_aiohttp": statistics.median(values) / baseline,
            "cpu_us_per_request": statistics.median(cpus[name]) * 1e6,
            "cpu_ratio_to_aiohttp": statistics.median(cpus[name]) / baseline_cpu,
            "server_cpu_us_per_request": statistics.median(server_cpus[name]) * 1e6,
        }
        for name, values in rates.items()
    ]
    return {"concurrency": concurrency, "requests": requests, "rounds": rounds, "rows": rows}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        upstream = start(
            [sys.executable, str(UPSTREAM), str(port)],
            f"http://127.0.0.1:{port}/_stats",
            Path(tmp) / "upstream.log",
        )
        try:
            report = asyncio.run(
                measure(
                    f"http://127.0.0.1:{port}/v1",
                    upstream.pid,
                    args.concurrency,
                    args.requests,
                    args.rounds,
                )
            )
        finally:
            upstream.terminate()
            upstream.wait()
    print(
        f"{report['concurrency']} concurrent tasks, {report['requests']} requests per round, "
        f"{report['rounds']} rounds. Rate: median (min-max), ratio to raw aiohttp's median; "
        "client CPU per request: median, ratio to raw aiohttp's; the server's CPU per request"
    )
    for row in report["rows"]:
        print(
            f"  {row['target']:<26} {row['median_rps']:6.0f} req/s ({row['min_rps']:.0f}"
            f"-{row['max_rps']:.0f}) {row['ratio_to_aiohttp']:6.1%}"
            f"   {row['cpu_us_per_request']:7.0f} us CPU {row['cpu_ratio_to_aiohttp']:5.2f}x"
            f"   server {row['server_cpu_us_per_request']:4.0f} us"
        )
    return report


if __name__ == "__main__":
    main()
