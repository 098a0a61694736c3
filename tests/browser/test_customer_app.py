"""The customer app on a phone, end to end, against the real demo server: a household logs in, sees its
balance and use, pays through the gateway simulator, sends the credit to its simulated meter over the
WebSocket meter link, and the meter's own display and the app agree. Also the keypad fallback, offline,
Hindi, and an axe-core accessibility scan of every screen.

Issue #6's "done when", as a test."""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import CustomerLogin, DemoServer, customer_login, new_context

pytestmark = pytest.mark.browser

RUPEES = re.compile(r"₹([\d,]+\.\d\d)")
ACCEPTED_OUTCOME = re.compile("credit_added|management_applied|confirmed")


def paise_in(text: str) -> int:
    match = RUPEES.search(text)
    assert match, f"no rupee amount in {text!r}"
    return int(match.group(1).replace(",", "").replace(".", ""))


def household(demo_server: DemoServer, index: int = 0) -> CustomerLogin:
    """A household of the first CGD (currency-mode meters). Index 0 is the printed login (two connections);
    the demo numbers its other households' phones on from it (…01, …03, …04: …02 shares …01's phone), and
    each test takes its own so one test's pending tokens never meet another's."""
    printed = demo_server.customers[0]
    if index == 0:
        return printed
    phone = str(int(printed.phone) + index + 1)
    return CustomerLogin(printed.cgd, phone, printed.page)


def pay(page: Page, amount_rupees: int, *, method: str = "upi") -> list[str]:
    """Top up from the app through the simulated gateway; returns the tokens on the result page."""
    page.goto("/app/topup")
    page.get_by_test_id("custom-amount").fill(str(amount_rupees))
    page.get_by_test_id(f"method-{method}").check()
    page.get_by_test_id("topup-pay").click()
    page.wait_for_url(re.compile(r"/pay/checkout/"))
    if method == "upi":
        page.fill("#vpa", "household@upi")
    page.get_by_test_id("sim-pay").click()
    expect(page.get_by_test_id("receipt-number")).to_be_visible()
    return [t.inner_text() for t in page.get_by_test_id("token").all()]


def meter_state(page: Page, serial: str) -> dict[str, Any]:
    response = page.request.get(f"/sim/meters/{serial}/state.json")
    assert response.ok, response.status
    state: dict[str, Any] = response.json()
    return state


AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def axe_violations(page: Page) -> list[str]:
    """Run axe-core (shipped by the axe-playwright-python package) on the page; WCAG 2.1 A and AA rules."""
    script = resources.files("axe_playwright_python").joinpath("axe.min.js").read_text(encoding="utf-8")
    page.evaluate(script)
    result = page.evaluate(
        "(tags) => axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})",
        AXE_TAGS,
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
    ]


def test_a_household_logs_in_and_sees_balance_use_and_alerts(
    phone_page: Page, demo_server: DemoServer
) -> None:
    page = phone_page
    customer_login(page, household(demo_server))
    expect(page.locator("h1")).to_contain_text("Namaste")
    balance = page.get_by_test_id("balance")
    expect(balance).to_have_text(RUPEES)
    expect(page.get_by_test_id("usage-chart")).to_be_visible()
    page.get_by_role("link", name="Monthly").click()
    expect(page.get_by_test_id("usage-chart")).to_be_visible()
    page.get_by_role("link", name="SCM").click()
    expect(page.locator("details.table-view")).to_contain_text("SCM")


def test_pay_send_to_meter_and_the_meter_agrees(phone_page: Page, demo_server: DemoServer) -> None:
    page = phone_page
    login = household(demo_server, 1)
    customer_login(page, login)
    tokens = pay(page, 500)
    assert tokens
    assert all(re.fullmatch(r"\d{4}( \d{4}){4}", t) for t in tokens)
    gas_credit = paise_in(page.get_by_test_id("gas-credit").inner_text())

    page.get_by_test_id("send-to-meter").click()
    page.wait_for_url(re.compile(r"/app/meter"))
    serial = page.get_by_test_id("meter-card").get_attribute("data-serial")
    assert serial
    rows = page.get_by_test_id("token-row")
    assert [r.get_attribute("data-token") for r in rows.all()][-len(tokens) :] == [
        t.replace(" ", "") for t in tokens
    ]
    before = meter_state(page, serial)["cumulative_credit_loaded"]
    page.get_by_test_id("send-to-meter").click()
    for outcome in page.get_by_test_id("token-outcome").all():
        expect(outcome).to_have_attribute("data-outcome", ACCEPTED_OUTCOME)
    shown = page.get_by_test_id("meter-credit")
    expect(shown).to_have_text(RUPEES, timeout=20_000)
    app_credit = paise_in(shown.inner_text())
    state = meter_state(page, serial)
    # The meter loaded exactly what the receipt says; its credit is what the app showed, less the gas
    # the simulated household has cooked with since (a few paise a second).
    assert state["cumulative_credit_loaded"] == before + gas_credit
    assert 0 <= app_credit - state["credit"] <= 2_000, (app_credit, state["credit"])

    # The app's history no longer shows the tokens as pending: the meter's signed events confirmed them.
    # (The credit shows before the events are uploaded: leaving the page earlier would cut the upload.)
    for outcome in page.get_by_test_id("token-outcome").all():
        expect(outcome).to_have_attribute("data-confirmed", "true", timeout=20_000)
    page.goto("/app/history")
    first = page.get_by_test_id("history-item").first
    expect(first).to_contain_text("on meter")
    expect(first.get_by_test_id("token-pending")).to_have_count(0)

    # The simulated meter's own display says the same credit.
    page.goto(f"/sim/meters/{serial}")
    display = page.locator(".lcd")
    expect(display).to_contain_text("₹")


def test_keypad_fallback_then_sync_confirms_the_token(phone_page: Page, demo_server: DemoServer) -> None:
    page = phone_page
    customer_login(page, household(demo_server, 2))
    tokens = pay(page, 250)
    page.get_by_test_id("send-to-meter").click()
    serial = page.get_by_test_id("meter-card").get_attribute("data-serial")
    assert serial
    groups = [" ".join(g.inner_text() for g in row.get_by_test_id("keypad-group").all())
              for row in page.get_by_test_id("token-row").all()]  # fmt: skip
    assert groups == tokens
    # Type the tokens on the meter's own keypad (the simulator page), as a household without Bluetooth would.
    sim = page.context.new_page()
    sim.goto(f"/sim/meters/{serial}")
    for token in tokens:
        sim.get_by_label(re.compile("Token", re.I)).fill(token.replace(" ", ""))
        sim.get_by_role("button", name=re.compile("Enter", re.I)).click()
        expect(sim.locator(".lcd")).to_contain_text("ACCEPTED")
    sim.close()
    page.get_by_test_id("sync-meter").click()
    # The meter's signed events, uploaded by the sync, prove each token was entered.
    for outcome in page.get_by_test_id("token-outcome").all():
        expect(outcome).to_have_attribute("data-confirmed", "true", timeout=20_000)
    expect(page.get_by_test_id("meter-credit")).to_have_text(RUPEES)
    page.goto("/app/history")
    expect(page.get_by_test_id("history-item").first.get_by_test_id("token-pending")).to_have_count(0)


def test_offline_shows_the_last_balance_and_queues_a_complaint(
    phone_context: BrowserContext, demo_server: DemoServer
) -> None:
    page = phone_context.new_page()
    customer_login(page, household(demo_server, 3))
    balance = page.get_by_test_id("balance").inner_text()
    page.wait_for_function(
        """async () => { for (const n of await caches.keys()) if (n.startsWith('citygas-screens-')
             && await (await caches.open(n)).match('/app/')) return true; return false; }"""
    )
    page.goto("/app/help/new")  # opened once online, so the worker keeps it
    phone_context.set_offline(True)
    try:
        page.goto("/app/")
        expect(page.get_by_test_id("balance")).to_have_text(balance)
        expect(page.get_by_test_id("offline-banner")).to_be_visible()
        # A screen never saved gives the offline page, with the gas-leak advice, not the browser's error.
        page.goto("/app/history")
        expect(page.locator("h1")).to_have_text("You are offline")
        # A complaint written offline waits on the phone...
        page.goto("/app/help/new")
        page.select_option("#category", "no_gas")
        page.fill("#description", "No gas since the morning, written in the basement")
        page.get_by_test_id("submit-ticket").click()
        expect(page.locator("[data-app-announcer]")).to_contain_text("Saved")
    finally:
        phone_context.set_offline(False)
    # ...and reaches the care centre once the phone is back online.
    page.evaluate("window.dispatchEvent(new Event('online'))")
    # (The "Saved … will be sent" notice also says "sent": wait for the one said after sending.)
    expect(page.locator("[data-app-announcer]")).to_contain_text("Your saved items were sent", timeout=10_000)
    page.goto("/app/help")
    expect(page.get_by_test_id("ticket-list")).to_contain_text("No gas")


def test_hindi_covers_the_screens_and_keeps_indian_number_format(
    phone_page: Page, browser: Browser, demo_server: DemoServer
) -> None:
    page = phone_page
    customer_login(page, household(demo_server, 4))
    page.get_by_role("banner").get_by_role("button", name="हिन्दी").click()
    expect(page.locator("html")).to_have_attribute("lang", "hi")
    expect(page.locator("h1")).to_contain_text("नमस्ते")
    expect(page.get_by_test_id("balance")).to_have_text(RUPEES)
    for path in ("/app/topup", "/app/history", "/app/meter", "/app/help", "/app/profile"):
        page.goto(path)
        nav = page.get_by_role("navigation").inner_text()
        assert "होम" in nav, (path, nav)
        assert "Home" not in nav, (path, nav)
        heading = page.locator("h1").inner_text()
        assert re.search("[\u0900-\u097f]", heading), (path, heading)
    # The choice is stored with the household: a fresh phone (no cookie) gets Hindi after logging in.
    fresh = new_context(browser, demo_server.base_url, phone=True)
    try:
        other = fresh.new_page()
        customer_login(other, household(demo_server, 4))
        expect(other.locator("html")).to_have_attribute("lang", "hi")
        other.get_by_role("banner").get_by_role("button", name="English").click()
        expect(other.locator("html")).to_have_attribute("lang", "en")
    finally:
        fresh.close()


def test_the_manifest_makes_the_app_installable(page: Page, demo_server: DemoServer) -> None:
    response = page.request.get("/app/manifest.webmanifest")
    assert response.ok
    manifest = json.loads(response.text())
    assert manifest["start_url"] == "/app/"
    assert manifest["display"] == "standalone"
    assert {"192x192", "512x512"} <= {icon["sizes"] for icon in manifest["icons"]}
    for icon in manifest["icons"]:
        assert page.request.get(icon["src"]).ok, icon
    worker = page.request.get("/app/sw.js")
    assert worker.ok
    assert "__VERSION__" not in worker.text()


def test_the_axe_scan_finds_a_missing_label(page: Page) -> None:
    """The scan below can fail: an input without a label and grey-on-grey text are reported."""
    page.set_content(
        '<html lang="en"><head><title>t</title></head><body><main><h1>x</h1><input type="text">'
        '<p style="color:#bbb;background:#ccc">faint</p></main></body></html>'
    )
    found = " ".join(axe_violations(page))
    assert "label" in found, found
    assert "color-contrast" in found, found


def test_every_app_screen_passes_an_axe_scan(phone_page: Page, demo_server: DemoServer) -> None:
    page = phone_page
    problems: list[str] = []
    page.goto("/app/login")
    problems += [f"/app/login: {v}" for v in axe_violations(page)]
    customer_login(page, household(demo_server, 5))
    for path in ("/app/", "/app/topup", "/app/meter", "/app/history", "/app/help", "/app/help/new",
                 "/app/help/gas", "/app/profile", "/app/autopay"):  # fmt: skip
        page.goto(path)
        problems += [f"{path}: {v}" for v in axe_violations(page)]
    page.get_by_role("banner").get_by_role("button", name="हिन्दी").click()
    problems += [f"/app/profile (hi): {v}" for v in axe_violations(page)]
    assert not problems, "\n".join(problems)
