"""The status page in a real browser (headless Chromium through Selenium), served by uWSGI
against the capped server: at a full cap it names the three holders, its form frees an
idle one, and a fresh browser without the cookie sees the status alone. Each state is saved
as a screenshot (see ``browser.artifacts``)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import chromium, require, screenshot
from holder_project import URLS, Project, Site, make_project, stop, uwsgi_binary, wait_for_line

from pa_dbhealth import sandbox

pytestmark = pytest.mark.matrix_once  # the same on every Django version

TOKEN = "a-health-token-for-the-browser"
PAGE_URLS = URLS.replace(
    "from django.urls import path",
    "from django.urls import include, path",
).replace(
    'urlpatterns = [path("hold/", hold)]',
    'urlpatterns = [path("hold/", hold), path("dbhealth/", include("pa_dbhealth.urls"))]',
)


@pytest.fixture
def printed(capsys: pytest.CaptureFixture[str]) -> Any:
    """``printed(path)``: say where a screenshot went, past pytest's capture."""

    def say(path: Path) -> None:
        with capsys.disabled():
            print(f"\nscreenshot: {path}")

    return say


@pytest.fixture
def project(tmp_path: Path, server: sandbox.SandboxInfo) -> Project:
    made = make_project(tmp_path / "project", server, tmp_path / "holders", HEALTH_TOKEN=TOKEN)
    (made.root / "holders_site" / "urls.py").write_text(PAGE_URLS)
    return made


@pytest.fixture
def full_cap(project: Project) -> Iterator[tuple[Site, dict[str, int]]]:
    """Three holders of the account's three connections, each in a process of its own: a
    uWSGI worker (CONN_MAX_AGE), a command's thread, a script that opened one at import."""
    require()  # the browser first: skip before starting anything without it
    binary = uwsgi_binary()
    if binary is None:
        pytest.skip("uWSGI is not installed (pip install uwsgi)")
    site = Site(project, binary, processes=1)
    started: list[subprocess.Popen[str]] = []
    try:
        site.wait_ready()  # its request leaves the worker's connection open
        worker = int(site.get("/hold/").split()[1])
        started.append(project.manage("hold_in_thread"))
        poller = int(wait_for_line(started[-1], "holding").split()[1])
        started.append(project.script("script.py"))
        leaky = int(wait_for_line(started[-1], "holding").split()[1])
        yield site, {"worker": worker, "poller": poller, "leaky": leaky}
    finally:
        for proc in started:
            stop(proc)
        site.stop()


def test_the_page_in_a_browser_at_a_full_cap(
    full_cap: tuple[Site, dict[str, int]], printed: Any, server: sandbox.SandboxInfo
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    site, ids = full_cap
    url = f"http://127.0.0.1:{site.port}/dbhealth/page/"
    with chromium() as driver:
        driver.get(url)
        assert driver.find_element(By.ID, "status").text == "critical"
        driver.find_element(By.NAME, "token").send_keys(TOKEN)
        driver.find_element(By.CSS_SELECTOR, "#sign-in button").click()
        WebDriverWait(driver, 20).until(lambda d: d.find_elements(By.ID, "count-default"))

        # (1) Three of three, each connection with its holder.
        assert driver.find_element(By.ID, "count-default").text == "3 of 3"
        rows = {
            int(row.get_attribute("data-id")): row.text
            for row in driver.find_elements(By.CSS_SELECTOR, "tr.connection")
        }
        assert set(rows) == set(ids.values()), rows
        assert "uwsgi" in rows[ids["worker"]]
        assert "poller" in rows[ids["poller"]] and "hold_in_thread" in rows[ids["poller"]]
        assert "probable leak" in rows[ids["poller"]] and "fresh_connections" in rows[ids["poller"]]
        assert "leaky.py:3" in rows[ids["leaky"]]
        assert "open it inside the function that needs it" in rows[ids["leaky"]]
        printed(screenshot(driver, "page-full-cap"))

        # (2) Free the script's connection: what would go first, then the confirmed kill.
        form = driver.find_element(By.CSS_SELECTOR, "#db-default form.free")
        minimum = form.find_element(By.NAME, "min_idle")
        minimum.clear()
        minimum.send_keys("0")
        form.find_element(By.TAG_NAME, "button").click()
        WebDriverWait(driver, 20).until(lambda d: d.find_elements(By.ID, "confirm"))
        offered = {
            int(box.get_attribute("value"))
            for box in driver.find_elements(By.CSS_SELECTOR, "#confirm input[name=id]")
        }
        assert offered == {ids["poller"], ids["leaky"]}  # never the page's own
        driver.find_element(By.ID, f"kill-{ids['poller']}").click()  # untick: keep it
        driver.find_element(By.ID, "include-unknown").click()  # no PROCESS privilege here
        printed(screenshot(driver, "page-confirm"))
        driver.find_element(By.CSS_SELECTOR, "#confirm button").click()
        WebDriverWait(driver, 20).until(lambda d: d.find_elements(By.ID, "notice"))
        assert driver.find_element(By.ID, "notice").text == f"default: killed {ids['leaky']}."
        WebDriverWait(driver, 20).until(
            lambda d: d.find_element(By.ID, "count-default").text == "2 of 3"
        )
        shown = {
            int(row.get_attribute("data-id"))
            for row in driver.find_elements(By.CSS_SELECTOR, "tr.connection")
        }
        assert shown == {ids["worker"], ids["poller"]}
        printed(screenshot(driver, "page-freed"))

    # (3) A fresh browser, without the cookie: the status alone.
    with chromium() as driver:
        driver.get(url)
        assert driver.find_element(By.ID, "status").text == "warning"  # one left
        source = driver.page_source
        assert driver.find_elements(By.NAME, "token")
        assert not driver.find_elements(By.CSS_SELECTOR, "tr.connection")
        for detail in ("poller", "leaky", "pid ", f":{server.port}", "default", "uwsgi"):
            assert detail not in source
        printed(screenshot(driver, "page-anonymous"))
