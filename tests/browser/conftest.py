"""Browser fixtures: a real `citygas serve` started the way a user starts it, and headless Chromium.

The server runs in a temporary directory on its own SQLite file, migrated and seeded with the same
commands `make run` uses; the logins the tests use are parsed from what `citygas demo logins` PRINTS,
so a login that the table shows but that does not work fails here.

Chromium is the system one (/usr/bin/chromium): Playwright's own browser downloads are not used.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytest.importorskip("playwright.sync_api")

from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright

CHROMIUM = os.environ.get("CITYGAS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CITYGAS = Path(sys.executable).parent / "citygas"
SHOTS = Path("/tmp/citygas-shots")
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 360, "height": 740}
TIMEOUT_MS = 10_000


@dataclass(frozen=True)
class StaffLogin:
    """One row of the printed table."""

    who: str
    username: str
    password: str
    page: str  # the printed login URL
    home: str | None  # the printed home path (after the arrow), if any


@dataclass(frozen=True)
class CustomerLogin:
    cgd: str
    phone: str
    page: str


@dataclass
class DemoServer:
    base_url: str
    printed: str
    env: dict[str, str]
    workdir: Path
    staff: list[StaffLogin] = field(default_factory=list)
    customers: list[CustomerLogin] = field(default_factory=list)

    def login(self, username: str) -> StaffLogin:
        for row in self.staff:
            if row.username == username:
                return row
        raise KeyError(f"{username} is not in the printed logins:\n{self.printed}")

    def by_home(self, home: str) -> StaffLogin:
        for row in self.staff:
            if row.home == home:
                return row
        raise KeyError(f"no printed login lands on {home}:\n{self.printed}")


CUSTOMER_LINE = re.compile(r"^Customer of (?P<cgd>.+?): phone (?P<phone>\+?\d[\d ]*\d) at (?P<page>\S+)")


def parse_logins(printed: str) -> tuple[list[StaffLogin], list[CustomerLogin]]:
    """Read the table `citygas demo logins` prints. A staff row is `who  username  password  URL[ → home]`;
    who has spaces, username and password do not, so the row is read from the URL backwards."""
    staff: list[StaffLogin] = []
    customers: list[CustomerLogin] = []
    for raw in printed.splitlines():
        line = raw.strip()
        if match := CUSTOMER_LINE.match(line):
            customers.append(CustomerLogin(match["cgd"], match["phone"].replace(" ", ""), match["page"]))
            continue
        tokens = line.split()
        urls = [i for i, t in enumerate(tokens) if re.match(r"https?://\S+/login$", t)]
        if not urls or urls[0] < 2:
            continue
        i = urls[0]
        home = tokens[i + 2] if len(tokens) > i + 2 and tokens[i + 1] in {"→", "->"} else None
        staff.append(StaffLogin(" ".join(tokens[: i - 2]), tokens[i - 2], tokens[i - 1], tokens[i], home))
    return staff, customers


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(args: list[str], env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        [str(CITYGAS), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, (
        f"citygas {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    )
    return done.stdout


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"citygas serve exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError as exc:
            last = exc
        time.sleep(0.1)
    pytest.fail(f"{url} not healthy after {timeout} s ({last}):\n{log.read_text(errors='replace')}")


@pytest.fixture(scope="session")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    assert CITYGAS.exists(), f"{CITYGAS} not found: install the package into the virtualenv"
    workdir = tmp_path_factory.mktemp("citygas-demo")
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYGAS_")}
    env.update(
        {
            "CITYGAS_DATABASE_URL": f"sqlite:///{workdir / 'demo.db'}",
            "CITYGAS_ENVIRONMENT": "development",  # the development OTP is shown on the page
            "CITYGAS_LOG_JSON": "false",
            "CITYGAS_BASE_URL": base_url,  # so the printed login URLs point at this server
            "CITYGAS_PORT": str(port),
        }
    )
    _run(["migrate"], env, workdir)
    _run(["demo", "seed", "--if-empty"], env, workdir)
    printed = _run(["demo", "logins"], env, workdir)
    staff, customers = parse_logins(printed)

    log = workdir / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(CITYGAS), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_healthy(f"{base_url}/healthz", proc, log)
        yield DemoServer(base_url, printed, env, workdir, staff, customers)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: install Debian's chromium (make test does, as root)")
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


def new_context(browser: Browser, base_url: str, *, phone: bool = False) -> BrowserContext:
    options: dict[str, object] = {"base_url": base_url, "locale": "en-IN", "timezone_id": "Asia/Kolkata"}
    if phone:
        options.update(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    else:
        options.update(viewport=DESKTOP)
    context = browser.new_context(**options)  # type: ignore[arg-type]
    context.set_default_timeout(TIMEOUT_MS)
    return context


@pytest.fixture
def context(browser: Browser, demo_server: DemoServer) -> Iterator[BrowserContext]:
    ctx = new_context(browser, demo_server.base_url)
    yield ctx
    ctx.close()


@pytest.fixture
def phone_context(browser: Browser, demo_server: DemoServer) -> Iterator[BrowserContext]:
    ctx = new_context(browser, demo_server.base_url, phone=True)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


@pytest.fixture
def phone_page(phone_context: BrowserContext) -> Page:
    return phone_context.new_page()


# --- helpers the tests share ------------------------------------------------------------------------


def staff_login(page: Page, login: StaffLogin) -> None:
    """Log in through the printed login page, the way a person does."""
    page.goto(login.page)
    page.get_by_label("Username").fill(login.username)
    page.get_by_label("Password").fill(login.password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()


def customer_login(
    page: Page, login: CustomerLogin, on_code_page: Callable[[Page], None] | None = None
) -> None:
    """Phone → development OTP shown on the page → code → the customer app."""
    page.goto(login.page)
    page.get_by_label(re.compile("Mobile number")).fill(login.phone)
    page.get_by_role("button", name="Send code").click()
    otp = page.locator("[data-testid=dev-otp]")
    expect(otp).to_be_visible()
    match = re.search(r"\b(\d{6})\b", otp.inner_text())
    assert match, f"no 6-digit code in {otp.inner_text()!r}"
    if on_code_page is not None:
        on_code_page(page)
    page.get_by_label("Code", exact=True).fill(match.group(1))
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/app/$"))


def path_of(page: Page) -> str:
    from urllib.parse import urlsplit

    return urlsplit(page.url).path
