"""GET /v1/stats and the dashboard GET /ui of a live `pickllm serve` with real traffic: the
numbers against what the clients saw, the keys (Bearer and the browser's Basic), the switch,
and the page in a real Chromium (Debian's `chromium`, driven by Playwright for Python without a
browser download): its charts carry the right numbers, an unauthenticated browser is refused,
with 1,000 contexts it lists a bounded page of them and still filters, the decision explorer
shows what /v1/decisions says, the probability history marks the detected changes, and with
two workers the page shows both merged."""

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


def drawn_values(page: Any, selector: str) -> dict[str, float]:
    bars = page.locator(selector)
    return {
        bars.nth(i).get_attribute("data-model"): float(bars.nth(i).get_attribute("data-value"))
        for i in range(bars.count())
    }


def test_the_explorer_shows_a_decision(browser: Any, live: tuple[Process, Traffic]) -> None:
    from playwright.sync_api import expect

    gateway, _ = live
    page, _ = open_page(browser, gateway)
    loaded(page)
    page.locator('#contexts tbody tr[data-context="legal"]').click()
    rows = page.locator("#recent-decisions tbody tr")
    expect(rows).to_have_count(20)  # the 20 most recent of the context's 60
    listed = httpx.get(
        f"{gateway.url}/v1/decisions",
        params={"router": "auto", "context": "legal", "limit": "20"},
        headers=AUTH,
    ).json()["decisions"]
    assert [rows.nth(i).get_attribute("data-decision") for i in range(20)] == [
        d["id"] for d in listed
    ]
    newest = listed[0]
    cells = rows.nth(0).locator("td")
    assert cells.nth(2).text_content() == newest["model"]
    assert cells.nth(5).text_content() == "settled"
    assert cells.nth(7).text_content() == f"{newest['attempts'][0]['reward']:.3f}"
    rows.nth(0).click()
    expect(page.locator("#explorer")).to_have_attribute("data-decision", newest["id"])
    assert drawn_values(page, "#decision-chart rect.bar") == pytest.approx(newest["probabilities"])
    attempt = page.locator("#attempts tbody tr")
    expect(attempt).to_have_count(1)
    texts = [attempt.locator("td").nth(i).text_content() for i in range(9)]
    expected = newest["attempts"][0]
    assert texts[1] == expected["model"]
    assert texts[3] == "answered"
    assert texts[5] == f"{expected['cost']:.6f}"
    assert texts[6:] == [
        "feedback",
        f"{expected['accuracy']:.3f}",
        f"{expected['reward']:.3f}",
    ]
    # By id: a decision still waiting for its feedback, then one that does not exist.
    waiting = httpx.get(
        f"{gateway.url}/v1/decisions", params={"context": "support", "limit": "1"}, headers=AUTH
    ).json()["decisions"][0]
    page.fill("#decision-id", waiting["id"])
    page.click("#lookup button")
    expect(page.locator("#explorer")).to_have_attribute("data-decision", waiting["id"])
    expect(page.locator("#explorer-summary")).to_contain_text("support")
    expect(page.locator("#explorer-summary")).to_contain_text("waiting")
    page.fill("#decision-id", "dec-000000000000-AAAAAAAAAAAAAAAAAAAAAA")
    page.click("#lookup button")
    expect(page.locator("#explorer-error")).to_contain_text("unknown decision")
    expect(page.locator("#explorer")).to_be_hidden()
    assert page.errors == [] or all("404" in e for e in page.errors), page.errors
    page.context.close()


def test_the_probability_history_shows_detected_changes(
    browser: Any, serve: Serve, upstream: str
) -> None:
    from playwright.sync_api import expect

    config = re.sub(
        r"\[routers\.auto\.policy\][^\[]*",
        '[routers.auto.policy]\nkind = "ucb"\n',
        base_config(upstream),
    )
    gateway = serve(config)
    for right in ("good", "bad"):  # good is right, then breaks and bad is right
        for _ in range(80):
            response = chat(gateway, "drift")
            model = response.headers["x-pickllm-model"]
            feedback(gateway, response.headers["x-pickllm-decision"], float(model == right))
    drift = stats(gateway, router="auto", context="drift")["routers"]["auto"]["contexts"]["drift"]
    assert drift["changes"] >= 1
    page, _ = open_page(browser, gateway)
    loaded(page)
    assert page.locator("#card-changes b").text_content() == str(drift["changes"])
    row = page.locator('#contexts tbody tr[data-context="drift"]')
    assert row.locator("td").nth(5).text_content() == str(drift["changes"])
    row.click()
    changes = page.locator("#probability-history line.change")
    expect(changes).to_have_count(drift["changes"])
    assert [
        int(changes.nth(i).get_attribute("data-decisions")) for i in range(changes.count())
    ] == [c["decisions"] for c in drift["last_changes"]]
    series = page.locator("#probability-history polyline.series")
    expect(series).to_have_count(2)
    last = drift["samples"][-1]["probabilities"]
    for i in range(2):
        model = series.nth(i).get_attribute("data-model")
        assert float(series.nth(i).get_attribute("data-last")) == pytest.approx(last[model])
        points = series.nth(i).get_attribute("points").split(" ")
        assert len(points) == len(drift["samples"])
    expect(page.locator("#samples-note")).to_contain_text(f"every {drift['sample_every']} ")
    assert page.errors == []
    page.context.close()


def test_the_page_merges_every_worker(browser: Any, serve: Serve, upstream: str) -> None:
    from playwright.sync_api import expect

    gateway = serve(base_config(upstream), workers=2)
    body = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
    for _ in range(20):
        with httpx.Client(headers=AUTH | {"x-pickllm-context": "legal"}) as fresh:
            assert fresh.post(f"{gateway.url}/v1/chat/completions", json=body).is_success
    page, _ = open_page(browser, gateway)
    # Until the second worker listens (it may start after the first is ready), one answers.
    expect(page.locator("#workers")).to_have_attribute("data-answered", "2", timeout=60_000)
    expect(page.locator("#workers")).to_have_text("2 workers, 2 merged")
    expect(page.locator("#card-decisions b")).to_have_text("20")
    assert stats(gateway)["routers"]["auto"]["decisions"] == 20
    assert page.errors == []
    page.context.close()
