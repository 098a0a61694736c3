"""Screenshots of the main homes at desktop and phone widths (written to /tmp/citygas-shots, not committed,
for a person to look at), plus the layout checks a machine can make: nothing wider than the screen, the
header and the main content visible, no horizontal scrolling on a phone."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Page

from tests.browser.conftest import SHOTS, DemoServer, customer_login, new_context, path_of, staff_login

pytestmark = pytest.mark.browser


def _check_layout(page: Page, name: str) -> None:
    overflow = page.evaluate(
        """() => {
            const width = document.documentElement.clientWidth;
            const wide = [...document.querySelectorAll('body *')]
              .filter(el => {
                const r = el.getBoundingClientRect();
                return r.width > 0 && r.right > width + 1;
              })
              .map(el => el.tagName.toLowerCase() + (el.className ? '.' + el.className : ''));
            return {scroll: document.documentElement.scrollWidth, width, wide: wide.slice(0, 5)};
        }"""
    )
    assert overflow["scroll"] <= overflow["width"], f"{name} scrolls sideways: {overflow}"
    # The staff portals end with a footer; the customer app has its tab bar there once logged in.
    if page.locator("body.app").count() == 0:
        last = "footer"
    else:
        last = "main" if path_of(page).startswith("/app/login") else "nav.tabs"
    for selector in ("header", "main h1", last):
        assert page.locator(selector).first.is_visible(), f"{name}: {selector} not visible"


def _shoot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


@pytest.mark.parametrize("phone", [False, True], ids=["desktop", "phone"])
def test_homes_lay_out_on_desktop_and_phone(browser: Browser, demo_server: DemoServer, phone: bool) -> None:
    width = "phone" if phone else "desktop"
    homes = [("cgd-home", demo_server.by_home("/cgd/")), ("ops-home", demo_server.by_home("/ops/"))]
    for name, login in homes:
        context = new_context(browser, demo_server.base_url, phone=phone)
        try:
            page = context.new_page()
            staff_login(page, login)
            assert path_of(page) == login.home
            _check_layout(page, f"{name}-{width}")
            _shoot(page, f"{name}-{width}")
        finally:
            context.close()

    context = new_context(browser, demo_server.base_url, phone=phone)
    try:
        page = context.new_page()
        page.goto("/login")
        _check_layout(page, f"staff-login-{width}")
        _shoot(page, f"staff-login-{width}")

        # A different printed household per width keeps well inside the OTP rate limit.
        def code_page(page: Page) -> None:
            _check_layout(page, f"customer-code-{width}")
            _shoot(page, f"customer-code-{width}")

        customer_login(page, demo_server.customers[-1 if phone else 0], on_code_page=code_page)
        _check_layout(page, f"customer-home-{width}")
        _shoot(page, f"customer-home-{width}")
    finally:
        context.close()
