"""Browser fixtures for the console tests: Debian's Chromium driven by Playwright (never a downloaded browser),
a live server holding a small CLR scenario, and a directory for the screenshots kept as test artifacts."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
ARTIFACTS = Path(os.environ.get("FHIR_CLR_TEST_ARTIFACTS", Path(__file__).parents[2] / "test-artifacts")) / "console"


def chromium_path() -> str | None:
    """The system Chromium (``FHIR_CLR_CHROMIUM`` or ``chromium`` on PATH)."""
    return os.environ.get("FHIR_CLR_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium for one test module (CI installs Debian's chromium; elsewhere the tests skip). Not for
    the session: Playwright's sync API keeps an event loop running while it is open, which later async tests
    could not use."""
    executable = chromium_path()
    if executable is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; ./dev test installs it with apt on CI machines")
        pytest.skip("no chromium on this machine (install Debian's chromium package to run the browser tests)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture()
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser tab (own cookies) with a desktop-sized viewport."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    tab = context.new_page()
    yield tab
    context.close()


def screenshot(tab: Page, name: str) -> Path:
    """Save a full-page screenshot of ``tab`` as a test artifact; its path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    tab.screenshot(path=str(path), full_page=True)
    return path
