"""Browser tests: Playwright drives Debian's Chromium against the real server (daphne), test database."""

import os
from pathlib import Path

import pytest
from django.core.management import call_command
from playwright.sync_api import expect, sync_playwright

from tests.conftest import service_missing
from tests.processes import ProcessGroup, current_database_url, free_port, get, wait_until

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
# The machines are shared and sometimes slow; a person would wait this long too.
expect.set_options(timeout=15_000)


@pytest.fixture(autouse=True)
def orm_beside_playwright(monkeypatch):
    """Playwright's sync API keeps an event loop running in the test thread; the ORM calls the tests
    make there (fixtures, assertions) are ordinary synchronous ones, so Django may allow them."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(scope="session")
def browser(django_db_setup):
    # The test database is created before Playwright starts its event loop in this thread.
    if not Path(CHROMIUM).exists():
        service_missing(f"Chromium at {CHROMIUM}")
    # From here on an event loop runs in this thread for the rest of the session (Playwright's sync
    # API), so the ORM calls of every later test in this worker, browser test or not, are ordinary
    # synchronous ones running beside it.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def app_server(transactional_db, tmp_path, redis_url):
    """The product's ASGI server with the demo company loaded; the channel layer is PostgreSQL's,
    as in the quickstart."""
    call_command("demo_data", "--skip-customers", stdout=open(os.devnull, "w"))  # noqa: SIM115
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # The quickstart's realtime layer (PostgreSQL); Redis only as the Celery broker.
    env = {
        "DATABASE_URL": current_database_url(),
        "REDIS_URL": "",
        "SITE_URL": url,
        "CELERY_BROKER_URL": redis_url,
    }
    group = ProcessGroup(env, tmp_path)
    group.start("web", "daphne", "-b", "127.0.0.1", "-p", str(port), "cdp.asgi:application")
    wait_until(lambda: get(f"{url}/login/")[0] == 200, timeout=60, what="the web server")
    group.url = url
    yield group
    group.stop_all()


@pytest.fixture
def new_page(browser, app_server):
    """Opens a page in a fresh browser profile (its own cookies), in Chinese unless told otherwise."""
    contexts = []

    def open_page(locale: str = "zh-CN"):
        context = browser.new_context(locale=locale, viewport={"width": 1366, "height": 860})
        context.set_default_timeout(15000)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


def log_in(page, base_url: str, username: str, password: str) -> None:
    page.goto(f"{base_url}/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/")


def screenshot(page, name: str) -> None:
    """Saves a screenshot for the README when SCREENSHOT_DIR is set."""
    folder = os.environ.get("SCREENSHOT_DIR")
    if folder:
        page.screenshot(path=str(Path(folder) / f"{name}.png"))


def journey_worker_start(app_server) -> None:
    """A worker that ingests events, matches them with journeys and runs the engine."""
    app_server.start(
        "worker", "celery", "-A", "cdp", "worker", "--pool", "solo", "-Q", "ingest,matching,engine"
    )
