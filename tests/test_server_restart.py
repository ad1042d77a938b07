"""A server restart (kill -9, then back on the same data and port) under a real uWSGI.

With persistent connections (CONN_MAX_AGE = 60, CONN_HEALTH_CHECKS off) plain Django reuses
each worker's dead connection once, and that request fails with 2006/2013. The middleware
sees on the socket that the server closed it and replaces it before the request runs: no
request after the restart fails. Only requests in flight during the outage may.
"""

from __future__ import annotations

from typing import Any

import pytest
from faults import kill_server
from processes import Processes, Site

from pa_dbhealth import sandbox

WORKERS = 2
PERSISTENT = {"CONN_MAX_AGE": 60, "CONN_HEALTH_CHECKS": False}


def serve(processes: Processes, server: sandbox.SandboxInfo, middleware: bool) -> Site:
    settings: dict[str, Any] = {
        "DATABASES": {"default": {**server.database_settings(), **PERSISTENT}}
    }
    if not middleware:
        settings["MIDDLEWARE"] = []
    return processes.uwsgi(processes=WORKERS, settings=settings)


def until_each_worker_answered(site: Site, limit: int = 200) -> list[tuple[int, str]]:
    """GET /connection/ until every worker has answered 200 at least once; every answer."""
    answers: list[tuple[int, str]] = []
    workers: set[str] = set()
    while len(workers) < WORKERS:
        assert len(answers) < limit, f"not every worker answered: {answers[-5:]}"
        status, body = site.get("/connection/")
        answers.append((status, body))
        if status == 200:
            workers.add(body.split()[0])
    return answers


def restart(server: sandbox.SandboxInfo) -> None:
    kill_server(server)
    sandbox.restart(server)


@pytest.mark.usefixtures("unblocked_db")
def test_no_request_fails_after_a_server_restart(
    processes: Processes, spare_server: sandbox.SandboxInfo
) -> None:
    site = serve(processes, spare_server, middleware=True)
    until_each_worker_answered(site)
    restart(spare_server)
    after = until_each_worker_answered(site) + [site.get("/connection/") for _ in range(20)]
    assert [status for status, _ in after] == [200] * len(after), after


@pytest.mark.usefixtures("unblocked_db")
def test_without_the_middleware_a_restart_costs_each_worker_a_request(
    processes: Processes, spare_server: sandbox.SandboxInfo
) -> None:
    """The control: the same site without ConnectionHygieneMiddleware, as plain Django."""
    site = serve(processes, spare_server, middleware=False)
    until_each_worker_answered(site)
    restart(spare_server)
    after = until_each_worker_answered(site)
    assert [status for status, _ in after].count(500) >= 1, after
