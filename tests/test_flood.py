"""A flood of strangers beside the site's own load, under a real uWSGI on the capped server
(3 connections): anonymous views of the status page and the health view, wrong tokens in
the page's form and as a ``Bearer``. The site's own requests must keep their throughput and
never meet the cap; the server must see about the site's own connections, not the flood's.

The figures of a run are printed (``pytest -s tests/test_flood.py``)."""

from __future__ import annotations

import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from conftest import connections_accepted
from processes import Processes, Site

from pa_dbhealth import sandbox

PROCESSES, THREADS = 2, 4  # 8 workers on an account capped at 3
SITE_CLIENTS = 2  # the site's own load: at most 2 connections at once, one is left
FLOOD_CLIENTS = 8
FLOOD_RATE = 160.0  # requests a second, all strangers together (the issue's: 100 to 500)
SECONDS = 5.0
TOKEN = "a-health-token-for-the-flood"
WRONG = "a-wrong-token-of-the-same-len"
PAGE = "/dbhealth/page/"


def request(site: Site, path: str, data: dict[str, str] | None = None, **headers: str) -> int:
    body = None if data is None else urllib.parse.urlencode(data).encode()
    sent = urllib.request.Request(site.url + path, data=body, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(sent, timeout=30) as response:  # noqa: S310
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as error:
        error.read()
        return int(error.code)


def page_form(site: Site) -> tuple[str, str]:
    """The CSRF cookie and the form's token of the page, as a browser would get them."""
    with urllib.request.urlopen(site.url + PAGE, timeout=30) as response:  # noqa: S310
        cookie = response.headers["Set-Cookie"].split(";")[0]
        html = response.read().decode()
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert found, html
    return cookie, found.group(1)


def stranger(site: Site, number: int) -> Callable[[], int]:
    """One of the flood's requests, in turn: an anonymous page view, an anonymous health
    view, a wrong Bearer token, a wrong token in the page's form."""
    cookie, csrf = page_form(site)
    kinds: list[Callable[[], int]] = [
        lambda: request(site, PAGE),
        lambda: request(site, "/dbhealth/"),
        lambda: request(site, "/dbhealth/", Authorization=f"Bearer {WRONG}"),
        lambda: request(
            site,
            PAGE,
            {"csrfmiddlewaretoken": csrf, "action": "login", "token": WRONG},
            Cookie=cookie,
            Referer=site.url + PAGE,
        ),
    ]
    return kinds[number % len(kinds)]


Client = tuple[str, Callable[[], int], float]  # name, request, seconds between (0: none)


def run_for(seconds: float, clients: list[Client]) -> dict[str, Counter[int]]:
    """Each client's request over and over for ``seconds`` (at most one per its interval):
    the answers' status codes."""
    answers: dict[str, Counter[int]] = {name: Counter() for name, _, _ in clients}
    lock = threading.Lock()
    start = time.monotonic()

    def loop(name: str, send: Callable[[], int], every: float) -> None:
        sent = 0
        while (now := time.monotonic()) < start + seconds:
            if every and now < start + sent * every:
                time.sleep(start + sent * every - now)
                continue
            status = send()
            sent += 1
            with lock:
                answers[name][status] += 1

    threads = [threading.Thread(target=loop, args=client) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 60)
    return answers


def phase(site: Site, admin: Any, flood: int) -> tuple[dict[str, Counter[int]], int]:
    """The site's load for SECONDS, beside ``flood`` strangers: answers and connections."""
    own = [("site", lambda: request(site, "/connection/"), 0.0)] * SITE_CLIENTS
    every = flood / FLOOD_RATE if flood else 0.0
    strangers = [(f"flood-{i % 4}", stranger(site, i), every) for i in range(flood)]
    before = connections_accepted(admin)
    answers = run_for(SECONDS, own + strangers)
    return answers, connections_accepted(admin) - before


@pytest.mark.matrix_once  # throughput under a flood: the same on every Django version
@pytest.mark.usefixtures("unblocked_db")
def test_a_flood_of_strangers_costs_the_site_nothing_it_needs(
    processes: Processes, server: sandbox.SandboxInfo, admin: Any, tmp_path: Any
) -> None:
    settings = {
        "DATABASES": {"default": server.database_settings()},
        "PA_DBHEALTH": {"HEALTH_TOKEN": TOKEN, "REGISTRY_DIR": str(tmp_path / "holders")},
    }
    site = processes.uwsgi(processes=PROCESSES, threads=THREADS, settings=settings)
    run_for(1.0, [("warm-up", lambda: request(site, "/connection/"), 0.0)] * SITE_CLIENTS)
    quiet, quiet_connections = phase(site, admin, flood=0)
    flooded, flood_connections = phase(site, admin, flood=FLOOD_CLIENTS)
    kinds = ("page views", "health views", "wrong Bearer", "wrong form token")
    print(
        f"\nsite alone: {quiet['site'][200] / SECONDS:.0f} 2xx/s {dict(quiet['site'])}, "
        f"server saw {quiet_connections} connections"
        f"\nwith flood: {flooded['site'][200] / SECONDS:.0f} 2xx/s {dict(flooded['site'])}, "
        f"server saw {flood_connections} connections"
        + "".join(f"\n  {kinds[i]}: {dict(flooded[f'flood-{i}'])}" for i in range(4))
    )
    site_ok, looks = flooded["site"][200], PROCESSES * (SECONDS + 2)
    # The site keeps its pace: the strangers take CPU, not connections (on two shared cores
    # the ratio of one run ranged from 0.5 to 1.1; the bound is one noise cannot break).
    assert site_ok >= 0.4 * quiet["site"][200], (site_ok, quiet["site"])
    # The server sees the site's own connections and, for all the strangers together, one
    # look a second per process at most; a look can take the last connection from one of
    # the site's requests at most (the site runs Django's plain backend: 1226 is a 503).
    site_all = sum(flooded["site"].values())  # a refused connect counts on the server too
    assert flood_connections <= site_all + looks, (flood_connections, flooded["site"])
    assert site_all - site_ok <= looks, flooded["site"]
    # A page or health view answers 503 only when its shared look met the cap.
    assert set(flooded["flood-0"]) <= {200, 503} and set(flooded["flood-1"]) <= {200, 503}
    assert set(flooded["flood-2"]) <= {200, 429} and flooded["flood-2"][429] > 0
    assert set(flooded["flood-3"]) <= {403, 429} and flooded["flood-3"][429] > 0
