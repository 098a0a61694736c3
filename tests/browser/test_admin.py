"""The operator admin onboards a new CGD through the back-office forms, and its first user logs in."""

from __future__ import annotations

import re
import secrets
import string

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.browser.conftest import DemoServer, StaffLogin, new_context, path_of, staff_login

pytestmark = pytest.mark.browser


def _operator(demo_server: DemoServer) -> StaffLogin:
    rows = [s for s in demo_server.staff if s.who.lower().startswith("operator admin")]
    assert rows, demo_server.printed
    return rows[0]


def _card(page: Page, heading: str) -> Locator:
    return page.locator("section", has=page.get_by_role("heading", name=heading))


def test_operator_creates_a_tenant_with_areas_and_a_user_who_can_log_in(
    page: Page,
    browser: Browser,
    demo_server: DemoServer,
) -> None:
    suffix = "".join(secrets.choice(string.ascii_lowercase) for _ in range(4))
    name, slug, code = f"Konkan Gas {suffix.title()} Ltd", f"konkan-{suffix}", f"K{suffix.upper()}"
    staff_login(page, _operator(demo_server))
    page.goto("/ops/admin/tenants")
    expect(page.get_by_role("heading", level=1)).to_have_text("Tenants")

    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label(re.compile(r"^Short name")).fill(slug)
    page.get_by_label(re.compile(r"^Number prefix")).fill(code)
    page.get_by_label("State", exact=True).fill("Goa")
    page.get_by_label("Customer helpline").fill("1800-100-2024")
    page.get_by_role("button", name="Add tenant").click()
    page.wait_for_url(re.compile(r"/ops/admin/tenants/[0-9a-f-]{36}$"))
    tenant_url = page.url
    expect(page.get_by_role("heading", level=1)).to_have_text(name)
    expect(page.get_by_text("No areas yet.")).to_be_visible()

    ga = _card(page, "Add a GA")
    ga.get_by_label("Code", exact=True).fill("NGA")
    ga.get_by_label("Name", exact=True).fill("North Goa GA")
    ga.get_by_label("State", exact=True).fill("Goa")
    ga.get_by_role("button", name="Add GA").click()
    page.wait_for_url(tenant_url)
    expect(page.get_by_role("cell", name=re.compile("North Goa GA"))).to_be_visible()

    ca = _card(page, "Add a charge area")
    ca.get_by_label("GA", exact=True).select_option(label="North Goa GA")
    ca.get_by_label("Code", exact=True).fill("NGA-PNJ")
    ca.get_by_label("Name", exact=True).fill("Panaji")
    ca.get_by_label("PIN code").fill("403001")
    ca.get_by_role("button", name="Add charge area").click()
    page.wait_for_url(tenant_url)
    expect(page.get_by_role("cell", name=re.compile(r"Panaji \(NGA-PNJ\)"))).to_be_visible()

    username, password = f"{suffix}.manager", "konkan-first-password"
    user = _card(page, "Add a user")
    user.get_by_label("Username").fill(username)
    user.get_by_label("Full name").fill("Sneha Naik")
    user.get_by_label(re.compile(r"^First password")).fill(password)
    user.get_by_label("CGD manager", exact=True).check()
    user.get_by_role("button", name="Add user").click()
    page.wait_for_url(tenant_url)
    row = page.get_by_role("row", name=re.compile(re.escape(username)))
    expect(row).to_contain_text("Sneha Naik")
    expect(row).to_contain_text("active")
    expect(page.get_by_role("alert")).to_have_count(0)

    fresh = new_context(browser, demo_server.base_url)
    try:
        newcomer = fresh.new_page()
        staff_login(
            newcomer, StaffLogin("CGD manager", username, password, f"{demo_server.base_url}/login", "/cgd/")
        )
        assert path_of(newcomer) == "/cgd/", newcomer.locator("main").inner_text()
        expect(newcomer.locator("header .who")).to_contain_text("Sneha Naik")
        expect(newcomer.locator("main")).to_contain_text(name)  # its own tenant, not the demo CGD
        expect(newcomer.locator("main")).not_to_contain_text("Demo Gas Nagar")
    finally:
        fresh.close()
