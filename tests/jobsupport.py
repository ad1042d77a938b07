"""What the job runner tests share: the worker's idle spell, the jobs.

Each runner's test runs three jobs in the runner's own worker: two back to back (the
connection is kept between them, as CONN_MAX_AGE = 60 says), then, after the worker has
idled past the server's 3 s wait_timeout, a third, which must not meet the dead connection.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

from conftest import account_ids_once
from django.db import DatabaseError, connections
from testsite.hygiene_urls import connection_id

SERVER_TIMEOUT = 3  # the server's wait_timeout while a test runs
IDLE = SERVER_TIMEOUT + 0.5  # how long the worker waits between the second and third job
KEPT_FOR = 60  # CONN_MAX_AGE: connections are kept between jobs

LOST = r"\((?:2006|4031)\b"  # what a job that met a dropped connection reports

__all__ = [
    "IDLE",
    "LOST",
    "JobFailed",
    "close_connections",
    "connection_id",
    "idle_spell",
    "three_jobs",
]


class JobFailed(Exception):
    """A job failed; the message is what the runner reported (its traceback)."""


@contextlib.contextmanager
def idle_spell(wait_timeout: Callable[[int], None], admin: Any) -> Iterator[None]:
    """The server drops connections idle for SERVER_TIMEOUT; every thread's connections
    are kept for KEPT_FOR. Afterwards the account must hold no connection: each test ends
    its worker's connection with a last job, and a leak shows here."""
    wait_timeout(SERVER_TIMEOUT)  # this thread's connection is closed: it reconnects
    # Workers' threads make their wrappers from connections.settings; this thread's wrapper
    # may have a dict of its own (tests/conftest.py).
    entries = {
        id(e): e for e in (connections.settings["default"], connections["default"].settings_dict)
    }
    before = connections.settings["default"]["CONN_MAX_AGE"]
    for entry in entries.values():
        entry["CONN_MAX_AGE"] = KEPT_FOR
    try:
        yield
    finally:
        for entry in entries.values():
            entry["CONN_MAX_AGE"] = before
    assert account_ids_once(admin, lambda ids: not ids) == [], "a worker left a connection"


def three_jobs(run: Callable[[], str]) -> tuple[str, str, str]:
    """The connection ids three jobs saw: two back to back, one after the idle spell."""
    first = run()
    second = run()
    time.sleep(IDLE)
    return first, second, run()


def close_connections() -> str:
    """A job that closes its thread's connections (a worker's last one in each test)."""
    for connection in connections.all(initialized_only=True):
        with contextlib.suppress(DatabaseError):  # a dropped one may complain: it is closed
            connection.close()
    return "closed"
