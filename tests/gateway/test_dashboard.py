"""GET /v1/stats and the dashboard GET /ui of a live `pickllm serve` with real traffic: the
numbers against what the clients saw, the keys (Bearer and the browser's Basic), the switch,
and the page in a real Chromium (Debian's `chromium`, driven by Playwright for Python without a
browser download): its charts carry the right numbers, an unauthenticated browser is refused,
and with 1,000 contexts it lists a bounded page of them and still filters."""

from __future__ import annotations

import os
import re
import shutil
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway_servers import KEY, Process, Serve, base_config

#: Set by .ci/run: a missing browser is then a failure, not a skip.
REQUIRE_BROWSER = os.environ.get("PICKLLM_REQUIRE_BROWSER") == "1"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
AUTH = {"Authorization": f"Bearer {KEY}"}


def chat(gateway: Process, context: str) -> httpx.Response:
    body = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
    headers = AUTH | {"x-pickllm-context": context}
    response = httpx.post(f"{gateway.url}/v1/chat/completions", json=body, headers=headers)
    assert response.status_code == 200
    return response


def feedback(gateway: Process, decision: str, accuracy: float) -> None:
    body = {"decision": decision, "accuracy": accuracy}
    assert httpx.post(f"{gateway.url}/v1/feedback", json=body, headers=AUTH).is_success


def stats(gateway: Process, **params: str) -> dict[str, Any]:
    response = httpx.get(f"{gateway.url}/v1/stats", params=params, headers=AUTH)
    assert response.status_code == 200
    return dict(response.json())


class Traffic:
    """What the clients saw: decisions per context and model, and what is still unanswered."""

    def __init__(self) -> None:
        self.chosen: dict[str, Counter[str]] = {}
        self.pending = 0

    def send(self, gateway: Process, context: str, n: int, *, answer: bool) -> None:
        for _ in range(n):
            response = chat(gateway, context)
            model = response.headers["x-pickllm-model"]
            self.chosen.setdefault(context, Counter())[model] += 1
            if answer:  # good is right, bad wrong
                feedback(gateway, response.headers["x-pickllm-decision"], float(model == "good"))
            else:
                self.pending += 1

    def totals(self) -> Counter[str]:
        return sum(self.chosen.values(), Counter())


@pytest.fixture
def live(serve: Serve, upstream: str) -> tuple[Process, Traffic]:
    gateway = serve(base_config(upstream))
    traffic = Traffic()
    traffic.send(gateway, "legal", 60, answer=True)
    traffic.send(gateway, "support", 7, answer=False)
    return gateway, traffic


def test_stats_report_what_the_clients_saw(live: tuple[Process, Traffic]) -> None:
    gateway, traffic = live
    body = stats(gateway)
    assert body["version"] == 1
    auto = body["routers"]["auto"]
    assert auto["models"] == ["good", "bad"]
    assert auto["decisions"] == 67
    assert auto["pending_feedback"] == traffic.pending == 7
    assert auto["breakers"] == {"good": "closed", "bad": "closed"}
    assert auto["budget_spent_usd"] is None
    totals = traffic.totals()
    for model in ("good", "bad"):
        assert auto["totals"][model]["decisions"] == totals[model]
        assert auto["totals"][model]["share"] == pytest.approx(totals[model] / 67)
    legal = auto["contexts"]["legal"]
    assert {m: s["decisions"] for m, s in legal["models"].items()} == {
        m: traffic.chosen["legal"][m] for m in ("good", "bad")
    }
    # Feedback said good is right, bad wrong: accuracy averages are exactly 1 and 0.
    if traffic.chosen["legal"]["good"]:
        assert legal["models"]["good"]["accuracy_avg"] == 1.0
    if traffic.chosen["legal"]["bad"]:
        assert legal["models"]["bad"]["accuracy_avg"] == 0.0
    assert sum(legal["probabilities"].values()) == pytest.approx(1.0)
    assert legal["leader"] == max(legal["probabilities"], key=legal["probabilities"].get)
    assert auto["contexts"]["support"]["models"]["good"]["accuracy_avg"] is None  # no feedback
    latency = auto["totals"]["good"]["latency_p50"]
    assert latency is None or latency >= 0
    # One context, with its recent decisions in order.
    detail = stats(gateway, router="auto", context="support")["routers"]["auto"]
    assert list(detail["contexts"]) == ["support"]
    assert Counter(detail["contexts"]["support"]["recent"]) == traffic.chosen["support"]


def test_stats_and_the_page_take_the_keys(serve: Serve, upstream: str) -> None:
    gateway = serve(base_config(upstream))
    assert httpx.get(f"{gateway.url}/v1/stats").status_code == 401
    assert httpx.get(f"{gateway.url}/v1/stats", auth=("any", "wrong")).status_code == 401
    assert httpx.get(f"{gateway.url}/v1/stats", auth=("any", KEY)).status_code == 200
    refused = httpx.get(f"{gateway.url}/ui")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Basic ")
    assert KEY not in refused.text
    assert httpx.get(f"{gateway.url}/ui/dashboard.js").status_code == 401
    page = httpx.get(f"{gateway.url}/ui", headers=AUTH)
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert httpx.get(f"{gateway.url}/ui/nothing.js", headers=AUTH).status_code == 404
    assert httpx.get(f"{gateway.url}/v1/stats?router=nope", headers=AUTH).status_code == 404


def test_the_page_can_be_switched_off(serve: Serve, upstream: str) -> None:
    config = base_config(upstream).replace("[server]\n", "[server]\nui = false\n")
    gateway = serve(config)
    assert httpx.get(f"{gateway.url}/ui", headers=AUTH).status_code == 404
    assert httpx.get(f"{gateway.url}/v1/stats", headers=AUTH).status_code == 200


# ==================== In Chromium ====================


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if REQUIRE_BROWSER:
            raise
        pytest.skip("playwright is not installed (pip install playwright)")
    if not os.path.exists(CHROMIUM):
        if REQUIRE_BROWSER:
            pytest.fail(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
        pytest.skip("no Chromium (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


def open_page(browser: Any, gateway: Process, password: str | None = KEY) -> tuple[Any, Any]:
    credentials = None if password is None else {"username": "operator", "password": password}
    context = browser.new_context(
        http_credentials=credentials, viewport={"width": 1280, "height": 900}
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    response = page.goto(f"{gateway.url}/ui")
    page.errors = errors
    return page, response


def loaded(page: Any, times: int = 1) -> None:
    """Wait until the page has drawn ``times`` (1 to 9) refreshes: an event, not a duration
    (an attribute the page counts up; no script evaluation, which its CSP forbids)."""
    from playwright.sync_api import expect

    at_least = re.compile(rf"^([{times}-9]|\d\d+)$")
    expect(page.locator("body")).to_have_attribute("data-loaded", at_least, timeout=60_000)


def test_an_unauthenticated_browser_is_refused(browser: Any, serve: Serve, upstream: str) -> None:
    from playwright.sync_api import Error

    gateway = serve(base_config(upstream))
    for password in (None, "not-the-key"):
        # Chromium answers the Basic challenge with what it has; refused, it either shows the
        # 401 or (headless, nothing to ask) gives the navigation up: never the dashboard.
        try:
            page, response = open_page(browser, gateway, password=password)
        except Error as error:
            outcome = str(error)
        else:
            outcome = f"HTTP {response.status}"
            assert page.locator("#share-chart").count() == 0
            page.context.close()
        assert outcome == "HTTP 401" or "ERR_INVALID_AUTH_CREDENTIALS" in outcome


def test_the_charts_show_the_numbers(browser: Any, live: tuple[Process, Traffic]) -> None:
    gateway, traffic = live
    page, response = open_page(browser, gateway)
    assert response.status == 200
    loaded(page)
    totals = traffic.totals()
    bars = page.locator("#share-chart rect.bar")
    drawn = {
        bars.nth(i).get_attribute("data-model"): float(bars.nth(i).get_attribute("data-value"))
        for i in range(bars.count())
    }
    assert drawn == pytest.approx({m: totals[m] / 67 for m in ("good", "bad")})
    label = page.locator('#share-chart text.value[data-model="good"]').text_content()
    assert label == f"{100 * totals['good'] / 67:.1f}%"
    assert page.locator("#card-decisions b").text_content() == "67"
    assert page.locator("#card-pending b").text_content() == "7"
    rows = page.locator("#models tbody tr")
    assert rows.count() == 2
    assert rows.nth(0).locator("td").nth(2).text_content() == str(totals["good"])
    # A context's detail: its probabilities as the learner has them, and its history.
    page.locator('#contexts tbody tr[data-context="legal"]').click()
    page.wait_for_selector("#probability-chart rect.bar")
    probabilities = stats(gateway, router="auto", context="legal")["routers"]["auto"]["contexts"][
        "legal"
    ]["probabilities"]
    bars = page.locator("#probability-chart rect.bar")
    drawn = {
        bars.nth(i).get_attribute("data-model"): float(bars.nth(i).get_attribute("data-value"))
        for i in range(bars.count())
    }
    assert drawn == pytest.approx(probabilities)
    assert page.locator("#history-chart polyline.series").count() == 2  # 60 decisions >= 50
    assert page.errors == []
    page.context.close()


def test_a_thousand_contexts_stay_a_page_of_rows(browser: Any, serve: Serve, upstream: str) -> None:
    gateway = serve(base_config(upstream))
    with httpx.Client(headers=AUTH, base_url=gateway.url) as client:
        body = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
        for i in range(1_000):
            headers = {"x-pickllm-context": f"tenant-{i:04d}"}
            assert client.post("/v1/chat/completions", json=body, headers=headers).is_success
    assert stats(gateway)["routers"]["auto"]["contexts_tracked"] == 1_000
    page, _ = open_page(browser, gateway)
    loaded(page)
    assert page.locator("#contexts tbody tr").count() == 100
    assert "of 1000" in page.locator("#contexts-more").text_content()
    page.fill("#filter", "tenant-0999")
    assert page.locator("#contexts tbody tr").count() == 1
    page.locator('#contexts tbody tr[data-context="tenant-0999"]').click()
    page.wait_for_selector("#probability-chart rect.bar")
    loaded(page, 2)  # the periodic refresh keeps running over 1,000 contexts
    assert page.locator("#contexts tbody tr").count() == 1, "the filter survives a refresh"
    assert page.errors == []
    page.context.close()
