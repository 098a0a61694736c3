"""An accessibility smoke check that needs no downloads: labelled inputs, a page language, one h1 per page,
and tap targets of at least 44 px on a phone (WCAG 2.5.5), on the login pages and the homes behind them."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page

from tests.browser.conftest import DemoServer, customer_login, path_of, staff_login

pytestmark = pytest.mark.browser

MIN_TAP = 44

AUDIT = """(minTap) => {
  const visible = el => {
    const r = el.getBoundingClientRect(); const s = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && s.display !== 'none';
  };
  const name = el => (el.id ? '#' + el.id : el.tagName.toLowerCase()) + (el.name ? `[name=${el.name}]` : '');
  const fields = [...document.querySelectorAll('input, select, textarea')]
    .filter(el => el.type !== 'hidden');
  const unlabelled = fields.filter(el => !(
      (el.labels && [...el.labels].some(l => l.textContent.trim())) ||
      (el.getAttribute('aria-label') || '').trim() || el.getAttribute('aria-labelledby'))).map(name);
  const small = [...document.querySelectorAll('button, input[type=submit], input[type=button]')]
    .filter(visible)
    .map(el => ({el: (el.textContent || el.value || name(el)).trim(), h: el.getBoundingClientRect().height}))
    .filter(b => b.h < minTap);
  return {lang: document.documentElement.lang, h1: document.querySelectorAll('h1').length,
          title: document.title, unlabelled, small, fields: fields.length};
}"""


def _audit(page: Page, where: str) -> list[str]:
    result = page.evaluate(AUDIT, MIN_TAP)
    problems = []
    if not result["lang"]:
        problems.append(f"{where}: <html> has no lang")
    if result["h1"] != 1:
        problems.append(f"{where}: {result['h1']} h1 elements, expected 1")
    if not result["title"].strip():
        problems.append(f"{where}: no <title>")
    if result["unlabelled"]:
        problems.append(f"{where}: inputs without a label: {result['unlabelled']}")
    if result["small"]:
        problems.append(f"{where}: buttons under {MIN_TAP}px high: {result['small']}")
    return problems


def test_login_pages_and_homes_pass_the_smoke_check_on_a_phone(
    phone_page: Page, demo_server: DemoServer
) -> None:
    page = phone_page
    problems: list[str] = []

    page.goto("/login")
    problems += _audit(page, "/login")
    assert page.evaluate("document.querySelectorAll('main input:not([type=hidden])').length") >= 3

    page.goto("/app/login")
    problems += _audit(page, "/app/login (phone)")
    page.get_by_label("Mobile number registered with your gas connection").fill(
        demo_server.customers[0].phone
    )
    page.get_by_role("button", name="Send code").click()
    page.locator("[data-testid=dev-otp]").wait_for()
    problems += _audit(page, "/app/login (code)")

    staff_login(page, demo_server.by_home("/cgd/"))
    assert path_of(page) == "/cgd/"
    problems += _audit(page, "/cgd/ (logged in)")
    page.locator("header").get_by_role("button", name="Log out").click()
    page.wait_for_url("**/login")

    customer_login(page, demo_server.customers[0])
    problems += _audit(page, "/app/ (logged in)")

    assert not problems, "\n".join(problems)
