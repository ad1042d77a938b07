"""What the job runner tests share: a throwaway Redis, the worker's idle spell, the job.

Each runner's test runs three jobs in the runner's own worker: two back to back (the
connection is kept between them, as CONN_MAX_AGE = 60 says), then, after the worker has
idled past the server's 3 s wait_timeout, a third, which must not meet the dead connection.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import account_ids_once
from django.db import DatabaseError, connections
from testsite.hygiene_urls import connection_id

from pa_dbhealth import sandbox

SERVER_TIMEOUT = 3  # the server's wait_timeout while a test runs
IDLE = SERVER_TIMEOUT + 0.5  # how long the worker waits between the second and third job
KEPT_FOR = 60  # CONN_MAX_AGE: connections are kept between jobs

LOST = r"\((?:2006|4031)\b"  # what a job that met a dropped connection reports

__all__ = [
    "IDLE",
    "LOST",
    "JobFailed",
    "assert_kept_then_replaced",
    "assert_meets_the_dropped_connection",
    "close_connections",
    "connection_id",
    "idle_spell",
    "redis_server",
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


def assert_kept_then_replaced(run: Callable[[], str]) -> None:
    """With the hook: kept between jobs, replaced before the job after the idle spell."""
    first, second, third = three_jobs(run)
    assert first == second  # kept between jobs, as CONN_MAX_AGE says
    assert third != first  # the dropped one was replaced before the job ran


def assert_meets_the_dropped_connection(run: Callable[[], str]) -> None:
    """Without it (the control): the job after the idle spell fails with 2006 (or 4031)."""
    with pytest.raises(JobFailed, match=LOST):
        three_jobs(run)


def close_connections() -> str:
    """A job that closes its thread's connections (a worker's last one in each test)."""
    for connection in connections.all(initialized_only=True):
        with contextlib.suppress(DatabaseError):  # a dropped one may complain: it is closed
            connection.close()
    return "closed"


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A Redis of the test's own on a free loopback port, no persistence, in a temporary
    folder; yields its URL. The system's Redis (6379) is never used."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("these tests need redis-server (Debian/Ubuntu: apt-get install redis-server)")
    port = sandbox.free_port()
    with tempfile.TemporaryDirectory(prefix="pa_dbhealth-redis-") as folder:
        command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--dir", folder]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            _wait_for_ping(port, process)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            process.wait(10)


def _wait_for_ping(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"redis-server exited: {process.stderr.read() if process.stderr else ''}"
            )
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1) as s:
            s.sendall(b"PING\r\n")
            if s.recv(16).startswith(b"+PONG"):
                return
        time.sleep(0.02)
    raise RuntimeError(f"redis-server did not answer on port {port}")
