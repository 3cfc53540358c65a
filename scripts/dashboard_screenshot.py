"""The screenshots of the dashboard in docs/gateway.md: a local upstream
(tests/gateway/upstream.py) and `pickllm serve` on free ports, the router "auto" over good, bad
and broken (which always fails: fallbacks) with the default learner (UCB, change detection),
real traffic with feedback (context "legal": good is right for 150 requests, then bad for 150,
a change the detector finds; "support": bad is right; a few unanswered; 40 more contexts), then
the page in Debian's Chromium through Playwright: the overview, the "legal" context, and the
explorer on a request that fell back. Each PNG is reduced to 256 colours (Pillow).

    python scripts/dashboard_screenshot.py    # writes docs/results/dashboard/*.png
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

OUT = ROOT / "docs" / "results" / "dashboard"


def small(path: Path) -> None:
    """Reduce ``path`` to 256 colours: a fraction of the bytes for a page of flat colours."""
    from PIL import Image

    with Image.open(path) as image:
        reduced = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    reduced.save(path, optimize=True)


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
    text = base_config(upstream_url).replace(
        'models = ["good", "bad"]', 'models = ["good", "bad", "broken"]'
    )
    config.write_text(
        text.split("[routers.auto.policy]")[0] + '[routers.auto.policy]\nkind = "ucb"\n'
    )
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
            plan = [("legal", "good", 150), ("legal", "bad", 150), ("support", "bad", 120)]
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
            page.wait_for_selector("#probability-history polyline.series")
            page.wait_for_selector("#recent-decisions tbody tr")
            shots = [OUT / "dashboard.png", OUT / "context.png", OUT / "explorer.png"]
            page.screenshot(path=str(shots[0]))
            page.locator("#detail").screenshot(path=str(shots[1]))
            listed = httpx.get(
                f"{gateway.url}/v1/decisions", params={"limit": "500"}, headers=headers
            ).json()["decisions"]
            fell_back = next((d for d in listed if len(d["attempts"]) > 1), listed[0])
            page.fill("#decision-id", fell_back["id"])
            page.click("#lookup button")
            page.wait_for_selector(f'#explorer[data-decision="{fell_back["id"]}"]')
            page.locator("#explorer").screenshot(path=str(shots[2]))
            browser.close()
        for shot in shots:
            small(shot)
            print(f"wrote {shot} ({shot.stat().st_size // 1024} KB)")
    finally:
        gateway.stop()
        upstream.stop()


if __name__ == "__main__":
    main()
