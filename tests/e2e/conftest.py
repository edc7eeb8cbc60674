"""Real-browser tests: the real app served on 127.0.0.1 in a thread, driven by Debian's Chromium
through Playwright.

Each test module gets its own live server on a fresh SQLite database (the browser tests check
what a person sees, so one database engine is enough; the PostgreSQL side is covered by the
rest of the suite). The app runs on a FrozenClock that the tests move instead of sleeping, and
its email and text messages go to the outbox table, where the tests read the codes.

Every test here is marked `e2e` (pytest -m "not e2e" skips them; `make e2e` runs only them) and
skips with the reason when Chromium or Playwright is not installed.
"""

import os
import shutil
from pathlib import Path

import pytest

from tests.e2e.live import CHROMIUM_ARGS, LiveServer

E2E_DIR = Path(__file__).parent


@pytest.hookimpl(tryfirst=True)  # before `-m` selects by marker
def pytest_collection_modifyitems(config, items):
    """Mark every test under tests/e2e as `e2e`, and skip them all with the reason when the
    browser or its driver is missing (in CI, where they must run, that is an error)."""
    reason = missing_browser_reason()
    if reason and os.environ.get("CI") == "true":
        raise pytest.UsageError(f"The browser tests cannot run: {reason}")
    for item in items:
        if E2E_DIR in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.e2e)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


def missing_browser_reason() -> str:
    """Why the browser tests cannot run here, or "" when they can."""
    if shutil.which("chromium") is None:
        return "Chromium is not installed (apt-get install -y chromium); .ci/run installs it."
    try:
        import axe_playwright_python  # noqa: F401
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright and axe-playwright-python are not installed (make venv installs them)."
    return ""


@pytest.fixture(scope="session")
def chromium():
    """One headless Debian Chromium for the whole run (each test gets its own context)."""
    from playwright.sync_api import expect, sync_playwright

    # A slow, busy 2-core machine gets more than the default 5 s before a check gives up.
    expect.set_options(timeout=10_000)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    """The real app on 127.0.0.1:<free port>, on a fresh SQLite database for this module."""
    server = LiveServer(tmp_path_factory.mktemp("e2e") / "e2e.db")
    server.start()
    yield server
    server.stop()
    assert not server.artifacts, "Template artifacts in pages the browser got:\n" + "\n".join(
        server.artifacts
    )


@pytest.fixture(params=[True, False], ids=["js-on", "js-off"])
def js_enabled(request):
    """Each flow runs twice: with JavaScript (HTMX swaps) and without (plain forms)."""
    return request.param


@pytest.fixture
def open_browser(chromium, live_server):
    """Open a new, independent browser window (its own cookies): open_browser(js=True)."""
    from tests.e2e.pages import Visitor

    visitors = []

    def make(js: bool = True, width: int = 1280, height: int = 900):
        context = chromium.new_context(
            base_url=live_server.url,
            java_script_enabled=js,
            viewport={"width": width, "height": height},
            locale="en-US",
            timezone_id="UTC",
        )
        visitor = Visitor(context, live_server, js=js, auditor=chromium)
        visitors.append(visitor)
        return visitor

    yield make
    problems = []
    for visitor in visitors:
        problems.extend(visitor.problems)
        visitor.close()
    assert not problems, "The browser reported problems:\n" + "\n".join(problems)


@pytest.fixture
def people(live_server):
    """Make logins for a test: people.family(name="Pat Parent") -> User (a unique email)."""
    return live_server.people


@pytest.fixture
def visitor(open_browser, js_enabled):
    """A browser window with JavaScript on or off (the `js_enabled` parameter)."""
    return open_browser(js=js_enabled)
