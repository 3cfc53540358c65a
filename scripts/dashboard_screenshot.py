"""The screenshot of the dashboard in docs/gateway.md: a local upstream (tests/gateway/upstream.py)
and `pickllm serve` on free ports, real traffic with feedback (context "legal": good is right,
bad wrong; "support": the other way round; a few unanswered; 40 more contexts), then the page
in Debian's Chromium through Playwright, the "legal" context selected.

    python scripts/dashboard_screenshot.py    # writes docs/results/dashboard/dashboard.png
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from gateway_servers import KEY, UPSTREAM, Process, base_config, start  # noqa: E402
from servers import free_port  # noqa: E402

OUT = ROOT / "docs" / "results" / "dashboard" / "dashboard.png"


def main() -> None:
    from playwright.sync_api import sync_playwright

    folder = Path(tempfile.mkdtemp())
    port = free_port()
    upstream_url = f"http://127.0.0.1:{port}/v1"
    upstream = Process(
        "",
        start(
            [sys.executable, str(UPSTREAM), str(port)],
            f"{upstream_url[:-3]}/_stats",
            folder / "upstream.log",
        ),
        folder / "upstream.log",
    )
    config = folder / "pickllm.toml"
    config.write_text(base_config(upstream_url).replace("epsilon = 0.1", "epsilon = 0.2"))
    gport = free_port()
    gateway = Process(
        f"http://127.0.0.1:{gport}",
        start(
            [
                sys.executable,
                "-m",
                "pickllm",
                "serve",
                "--config",
                str(config),
                "--port",
                str(gport),
            ],
            f"http://127.0.0.1:{gport}/readyz",
            folder / "serve.log",
            {"PICKLLM_TEST_KEY": KEY},
        ),
        folder / "serve.log",
    )
    try:
        headers = {"Authorization": f"Bearer {KEY}"}
        with httpx.Client(base_url=gateway.url, headers=headers, timeout=30) as client:
            body = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
            plan = [("legal", "good", 150), ("support", "bad", 120)]
            plan += [(f"tenant-{i:02d}", "good", 3) for i in range(40)]
            for context, right, n in plan:
                for i in range(n):
                    answer = client.post(
                        "/v1/chat/completions", json=body, headers={"x-pickllm-context": context}
                    )
                    if i % 25 == 24:
                        continue  # left without feedback
                    model = answer.headers["x-pickllm-model"]
                    client.post(
                        "/v1/feedback",
                        json={
                            "decision": answer.headers["x-pickllm-decision"],
                            "accuracy": float(model == right),
                        },
                    )
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path="/usr/bin/chromium", args=["--no-sandbox"]
            )
            context = browser.new_context(
                http_credentials={"username": "operator", "password": KEY},
                viewport={"width": 1280, "height": 900},
            )
            page = context.new_page()
            page.goto(f"{gateway.url}/ui")
            page.wait_for_selector('#contexts tbody tr[data-context="legal"]')
            page.locator('#contexts tbody tr[data-context="legal"]').click()
            page.wait_for_selector("#history-chart polyline.series")
            page.screenshot(path=str(OUT), full_page=True)
            browser.close()
        print(f"wrote {OUT}")
    finally:
        gateway.stop()
        upstream.stop()


if __name__ == "__main__":
    main()
