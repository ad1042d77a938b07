"""Holders the site does not control, for the tests at a cap someone else holds: plain
MySQLdb connections (a console), the ``mariadb`` command-line client, and a registry entry
written by another host (a scheduled task elsewhere)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pa_dbhealth.core import registry
from pa_dbhealth.core.registry.files import FORMAT, file_name
from pa_dbhealth.holders import server_of

OTHER_HOST = "cron-elsewhere"
PROBES_PER_SECOND = 20  # the head of the line's bound, whatever the number of waiters
RETIRING = 4 * 3  # each of the line's 3 tokens retired once: a refusal and 3 quick tries


def retrying_settings(server: Any) -> dict[str, Any]:
    """The retrying backend's settings for ``server``, as Django completes them."""
    from django.db import connections

    return dict(
        connections.configure_settings(
            {"default": server.database_settings(engine="pa_dbhealth.backends.mysql")}
        )["default"]
    )


def aborted_connects(admin: Any) -> int:
    """The refused connects the server has counted since it started."""
    admin.execute("SHOW GLOBAL STATUS LIKE 'Aborted_connects'")
    return int(admin.fetchone()[1])


@contextmanager
def mariadb_console(server: Any) -> Iterator[subprocess.Popen[bytes]]:
    """The ``mariadb`` client, connected and waiting for input, as a console left open."""
    client = shutil.which("mariadb") or shutil.which("mysql")
    if client is None:
        raise AssertionError("the mariadb client is not installed (apt-get install mariadb-client)")
    console = subprocess.Popen(
        [client, "-h", server.host, "-P", str(server.port), "-u", server.user, server.database],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "MYSQL_PWD": server.password},
    )
    try:
        yield console
    finally:
        console.kill()
        console.wait()


def other_hosts_entry(server: Any, connection_id: int) -> Path:
    """A registry entry of another host (its process cannot be checked from here) saying it
    holds ``connection_id`` of the test account."""
    where = registry.directory(None)
    assert where is not None
    where.mkdir(mode=0o700, parents=True, exist_ok=True)
    address, account = server_of(server.database_settings(), "mysql")
    now = time.time()
    held = {
        "server": address, "account": account, "vendor": "mysql", "id": connection_id,
        "name": "default", "thread": "MainThread", "opened_at": now, "last_used": now,
        "caller": "tasks/nightly.py:12", "stack": None, "leak": None,
    }  # fmt: skip
    entry = {
        "format": FORMAT, "host": OTHER_HOST, "pid": 4242, "started": 1,
        "program": "python tasks/nightly.py", "written_at": now, "connections": [held],
    }  # fmt: skip
    path = where / file_name(OTHER_HOST, 4242)
    path.write_text(json.dumps(entry))
    return path


@contextmanager
def cap_held_outside(
    server: Any, raw_connections: Callable[[int], list[Any]], account_ids: Callable[[], list[int]]
) -> Iterator[list[int]]:
    """The whole cap held outside pa_dbhealth: two plain MySQLdb connections, one of them
    claimed by another host's registry entry, and a ``mariadb`` console; their ids."""
    _console, cron = raw_connections(2)
    entry = other_hosts_entry(server, cron.thread_id())
    with mariadb_console(server):
        deadline = time.monotonic() + 10
        while len(account_ids()) < 3:
            assert time.monotonic() < deadline, "the console never connected"
            time.sleep(0.05)
        try:
            yield account_ids()
        finally:
            entry.unlink(missing_ok=True)


def answers(url: str, count: int) -> tuple[list[tuple[int, float, str | None]], float]:
    """``count`` GETs of ``url`` at once: (status, seconds, Retry-After) each, and the time
    they took together."""

    def get(_: int) -> tuple[int, float, str | None]:
        started = time.monotonic()
        try:
            urllib.request.urlopen(url, timeout=30).close()  # noqa: S310
        except urllib.error.HTTPError as answer:
            return answer.code, time.monotonic() - started, answer.headers.get("Retry-After")
        return 200, time.monotonic() - started, None

    started = time.monotonic()
    with ThreadPoolExecutor(count) as pool:
        found = list(pool.map(get, range(count)))
    return found, time.monotonic() - started
