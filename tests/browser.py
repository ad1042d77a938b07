"""A real browser for the tests: headless Chromium driven by Selenium, and screenshots.

    with chromium() as driver:          # a fresh profile: no cookie of an earlier browser
        driver.get(url)
        path = screenshot(driver, "full-cap")

Chromium and its driver are Debian's ``chromium`` and ``chromium-driver``; Selenium comes
with the ``test`` extra. When one is missing the test is skipped, saying which, except
under ``CI``, where it fails. Screenshots go to ``$PA_DBHEALTH_ARTIFACTS``, else to
``<repo>/artifacts/screenshots/`` (ignored by git).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = "apt-get install chromium chromium-driver"


def _unavailable(reason: str) -> None:
    message = f"the browser tests need {reason}"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def artifacts() -> Path:
    """Where this run's screenshots go (created)."""
    given = os.environ.get("PA_DBHEALTH_ARTIFACTS")
    where = Path(given) if given else ROOT / "artifacts" / "screenshots"
    where.mkdir(parents=True, exist_ok=True)
    return where


def require() -> tuple[str, str]:
    """Chromium's and its driver's paths; skips the test (fails it under ``CI``) when they
    or Selenium are missing. Call it before starting what the test drives."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_binary = shutil.which("chromedriver")
    if binary is None or driver_binary is None:
        missing = [n for n, b in (("chromium", binary), ("chromedriver", driver_binary)) if not b]
        _unavailable(f"{' and '.join(missing)} (Debian: {PACKAGES})")
    try:
        import selenium  # noqa: F401
    except ImportError:
        _unavailable("selenium (pip install -e '.[test]')")
    assert binary is not None and driver_binary is not None
    return binary, driver_binary


@contextmanager
def chromium(width: int = 1280, height: int = 1000) -> Iterator[Any]:
    """A headless Chromium with a profile of its own, quit afterwards."""
    binary, driver_binary = require()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix="pa_dbhealth-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = binary
        for argument in (
            "--headless=new",
            "--no-sandbox",  # root in a container has no user namespace to sandbox with
            "--disable-dev-shm-usage",
            "--disable-gpu",
            f"--window-size={width},{height}",
            f"--user-data-dir={profile}",
        ):
            options.add_argument(argument)
        driver = webdriver.Chrome(service=Service(driver_binary), options=options)
        try:
            yield driver
        finally:
            driver.quit()


def screenshot(driver: Any, name: str) -> Path:
    """A PNG of the whole page as the browser shows it, in :func:`artifacts`."""
    path = artifacts() / f"{name}.png"
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(driver.get_window_size()["width"], max(int(height) + 100, 600))
    assert driver.save_screenshot(str(path)), f"no screenshot written to {path}"
    return path
