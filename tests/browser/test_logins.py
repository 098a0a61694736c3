"""Every login `citygas demo logins` prints works in a real browser (issue 2: "each printed login opens its
home page in a browser"), for staff and for households, and a wrong password reads as such."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect

from citygas.identity.rules import Role
from tests.browser.conftest import DemoServer, customer_login, new_context, path_of, staff_login

pytestmark = pytest.mark.browser


def test_the_printed_table_has_one_staff_login_per_role_and_a_customer(demo_server: DemoServer) -> None:
    assert len(demo_server.staff) == len(Role), demo_server.printed
    assert len({s.username for s in demo_server.staff}) == len(Role), demo_server.printed
    assert demo_server.customers, demo_server.printed
    for row in demo_server.staff:
        assert row.page == f"{demo_server.base_url}/login", row


def test_each_printed_staff_login_opens_its_home_and_logs_out(
    browser: Browser, demo_server: DemoServer
) -> None:
    problems: list[str] = []
    for login in demo_server.staff:
        context = new_context(browser, demo_server.base_url)
        page = context.new_page()
        try:
            staff_login(page, login)
            landed = path_of(page)
            if login.home is not None and landed != login.home:
                problems.append(f"{login.username}: landed on {landed}, the table says {login.home}")
                continue
            if landed == "/login":
                problems.append(f"{login.username}: still on /login: {page.locator('main').inner_text()!r}")
                continue
            h1 = page.locator("h1")
            if h1.count() != 1 or not h1.inner_text().strip():
                problems.append(f"{login.username}: {h1.count()} h1 on {landed}")
            who = page.locator("header .who").inner_text()
            role_label = login.who.split(",")[0].strip()
            if login.username not in who or role_label.lower() not in who.lower():
                problems.append(
                    f"{login.username}: header shows {who!r}, expected the name {role_label!r} and username"
                )
            page.locator("header").get_by_role("button", name="Log out").click()
            page.wait_for_url(re.compile(r"/login$"))
            expect(page.get_by_role("heading", level=1)).to_have_text("Staff login")
            # The session is gone: the home page asks for a login again.
            page.goto(login.home or landed)
            if path_of(page) != "/login":
                problems.append(
                    f"{login.username}: after logging out {login.home or landed} opened {page.url}"
                )
        finally:
            context.close()
    assert not problems, "\n".join(problems) + "\n\nprinted:\n" + demo_server.printed


def test_printed_customer_logs_in_with_the_phone_code_on_a_phone(
    phone_page: Page, demo_server: DemoServer
) -> None:
    login = demo_server.customers[0]
    customer_login(phone_page, login)
    assert path_of(phone_page) == "/app/"
    expect(phone_page.get_by_role("heading", level=1)).to_contain_text("Namaste")
    # The printed household has two connections: the home screen offers both.
    options = phone_page.get_by_label("Connection").locator("option").all_inner_texts()
    assert len(options) == 2, options
    assert all(re.match(r"[A-Z]{2,6}-C-\d{8} · ", o) for o in options), options

    phone_page.get_by_test_id("nav-profile").click()
    phone_page.get_by_role("button", name="Log out").click()
    phone_page.wait_for_url(re.compile(r"/app/login$"))
    phone_page.goto("/app/")
    assert path_of(phone_page) != "/app/", "the customer app still opens after logging out"


def test_wrong_password_says_so_and_stays_on_login(page: Page, demo_server: DemoServer) -> None:
    login = demo_server.by_home("/cgd/")
    page.goto(login.page)
    page.get_by_label("Username").fill(login.username)
    page.get_by_label("Password").fill(login.password + "-wrong")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong username or password")
    assert path_of(page) == "/login"
    expect(page.get_by_label("Username")).to_have_value(login.username)
    expect(page.get_by_label("Password")).to_have_value("")
    # And the right password still works afterwards (one mistake does not lock the account).
    staff_login(page, login)
    assert path_of(page) == "/cgd/"
