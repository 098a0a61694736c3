"""Issue 4's story in a real browser: a person opens a demo meter's page, types a token vended for it, sees
the credit rise, and the valve re-arm and open after the button press."""

import re
import subprocess

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import CITYGAS, DemoServer, staff_login

pytestmark = pytest.mark.browser


def _demo_token(server: DemoServer, serial: str, amount: str) -> str:
    done = subprocess.run(
        [str(CITYGAS), "meter", "test-token", serial, "--amount", amount],
        env=server.env,
        cwd=server.workdir,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    match = re.match(r"^((?:\d{4} ){4}\d{4})", done.stdout)
    assert match, done.stdout
    return match.group(1)


def test_a_token_typed_on_the_simulated_meter_credits_it_and_the_button_opens_the_valve(
    page: Page,
    demo_server: DemoServer,
) -> None:
    staff_login(page, demo_server.by_home("/ops/"))
    page.get_by_role("link", name="Meters").click()
    # DGN01000021 is installed but not yet activated: no credit, valve closed, nobody cooking on it.
    page.get_by_role("link", name="DGN01000021").click()
    page.get_by_role("link", name="Open the simulated meter").click()
    lcd = page.get_by_test_id("lcd")
    expect(lcd).to_contain_text("CREDIT ₹0.00")
    expect(page.get_by_test_id("valve")).to_have_text("closed")

    token = _demo_token(demo_server, "DGN01000021", "300")
    page.get_by_label("Keypad: type the 20-digit token").fill(token)
    page.get_by_role("button", name="Enter ↵").click()
    expect(lcd).to_contain_text("CREDIT ₹300.00")
    expect(lcd).to_contain_text("ACCEPTED +₹300.00")
    expect(lcd).to_contain_text("PRESS BUTTON")
    expect(page.get_by_test_id("valve")).to_have_text("armed")

    page.get_by_test_id("meter-button").click()
    expect(lcd).to_contain_text("VALVE OPEN")
    expect(page.get_by_test_id("valve")).to_have_text("open")

    page.get_by_label("Keypad: type the 20-digit token").fill(token)
    page.get_by_role("button", name="Enter ↵").click()
    expect(lcd).to_contain_text("REJECTED: USED")
    expect(page.get_by_test_id("credit")).to_have_text("30000")


def test_a_token_for_another_meter_is_rejected(page: Page, demo_server: DemoServer) -> None:
    staff_login(page, demo_server.by_home("/ops/"))
    token = _demo_token(demo_server, "DGN01000004", "100")
    page.goto(f"{demo_server.base_url}/sim/meters/DGN01000022")  # installed, no credit
    page.get_by_label("Keypad: type the 20-digit token").fill(token)
    page.get_by_role("button", name="Enter ↵").click()
    expect(page.get_by_test_id("lcd")).to_contain_text("REJECTED")
    expect(page.get_by_test_id("credit")).to_have_text("0")
