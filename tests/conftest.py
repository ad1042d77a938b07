"""The suite's own capped MariaDB/MySQL server, started once per session.

Every test that touches MySQL talks to this server: an ``app`` account capped at
3 connections (like PythonAnywhere's) and an uncapped ``admin`` account for watching.
The PostgreSQL tests get a throwaway PostgreSQL of their own (``pgserver``), started the
first time one of them runs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pgserver
import pytest
from django.conf import settings
from django.db import connections

from pa_dbhealth import sandbox

_info: sandbox.SandboxInfo | None = None
_registry: str | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _info, _registry
    if hasattr(config, "workerinput"):
        return
    # The registry of holders of this run (and of the processes it starts), not the user's.
    _registry = tempfile.mkdtemp(prefix="pa_dbhealth-tests-registry-")
    os.environ["PA_DBHEALTH_REGISTRY_DIR"] = os.path.join(_registry, "holders")
    try:
        _info = sandbox.start()
    except sandbox.SandboxError as exc:
        raise pytest.UsageError(f"cannot start the test database server: {exc}") from None
    default = _info.database_settings()
    default["TEST"] = {"NAME": "test_app"}
    settings.DATABASES["default"] = default
    # A second alias on the same account, for tests that audit changed settings of it.
    settings.DATABASES["audited"] = {**default, "TEST": {"MIRROR": "default"}}
    # The connection handler may have read DATABASES already: make it read it again.
    connections.__dict__.pop("settings", None)
    for alias in list(connections):
        connections[alias].settings_dict.update(settings.DATABASES[alias])


def pytest_unconfigure(config: pytest.Config) -> None:
    if _info is not None:
        sandbox.stop(_info)
    if _registry is not None:
        shutil.rmtree(_registry, ignore_errors=True)


def pytest_report_header(config: pytest.Config) -> str | None:
    if _info is None:
        return None
    return (
        f"database: {_info.flavour} {_info.version} on {_info.host}:{_info.port} "
        f"(account {_info.user!r} capped at {_info.limit})"
    )


@pytest.fixture(scope="session")
def server() -> sandbox.SandboxInfo:
    """The running test server: host, port, the capped and the admin account."""
    assert _info is not None
    return _info


@pytest.fixture
def unblocked_db(django_db_blocker: Any) -> Iterator[None]:
    """Database access without a test database: for aliases no test may create (SQLite
    in memory, an unreachable server)."""
    with django_db_blocker.unblock():
        yield


@pytest.fixture
def admin(server: sandbox.SandboxInfo) -> Iterator[Any]:
    """A raw cursor of the uncapped admin account, which sees every connection."""
    conn = server.connect(admin=True)
    conn.autocommit(True)
    cursor = conn.cursor()
    yield cursor
    conn.close()


@pytest.fixture
def raw_connections(server: sandbox.SandboxInfo) -> Iterator[Callable[[int], list[Any]]]:
    """Open N raw connections of the capped account; all are closed after the test."""
    opened: list[Any] = []

    def open_(count: int, **kwargs: Any) -> list[Any]:
        new = [server.connect(**kwargs) for _ in range(count)]
        opened.extend(new)
        return new

    yield open_
    for conn in opened:
        with contextlib.suppress(Exception):  # already closed, or killed by the test
            conn.close()


class ThreadHolders:
    """Threads of this process that each open a Django connection and keep it until the
    test ends (with the default name given, as a forgotten poller would)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.threads: list[threading.Thread] = []

    def hold(self, name: str, alias: str = "default") -> int:
        """Start a thread ``name`` holding a connection; the server's id for it."""
        opened = threading.Event()
        ids: list[int] = []

        def run() -> None:
            connections[alias].ensure_connection()
            ids.append(connections[alias].connection.thread_id())
            opened.set()
            self.release.wait(30)
            connections.close_all()

        thread = threading.Thread(target=run, name=name)
        thread.start()
        assert opened.wait(10)
        self.threads.append(thread)
        return ids[0]


@pytest.fixture
def thread_holders() -> Iterator[ThreadHolders]:
    made = ThreadHolders()
    yield made
    made.release.set()
    for thread in made.threads:
        thread.join(10)


@pytest.fixture
def wait_timeout(admin: Any, django_db_blocker: Any) -> Iterator[Callable[[int], None]]:
    """Set the server's idle timeout for connections opened from now on; restored after.

    pa_dbhealth learns the server's timeout afresh: from the next connection during the
    test, and from the restored value right after it (so no later test sees the one-off
    learning query in its query count)."""
    from pa_dbhealth import hygiene

    admin.execute("SELECT @@global.wait_timeout, @@global.interactive_timeout")
    before = admin.fetchone()

    def apply(seconds: int) -> None:
        admin.execute(
            "SET GLOBAL wait_timeout = %s, GLOBAL interactive_timeout = %s", [seconds, seconds]
        )
        for conn in connections.all(initialized_only=True):
            if not conn.in_atomic_block:
                conn.close()
        hygiene.forget_server_timeouts()

    yield apply
    apply(before[0])
    with django_db_blocker.unblock():
        probe = connections.create_connection("default")
        try:
            probe.ensure_connection()
        finally:
            probe.close()


def account_connection_ids(admin: Any, user: str = "app") -> list[int]:
    """Ids of the account's connections, as the uncapped admin sees them."""
    admin.execute(
        "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s ORDER BY ID", [user]
    )
    return [int(row[0]) for row in admin.fetchall()]


@pytest.fixture
def account_ids(admin: Any) -> Callable[[], list[int]]:
    return lambda: account_connection_ids(admin)


def account_ids_once(
    admin: Any, settled: Callable[[list[int]], bool], timeout: float = 5.0
) -> list[int]:
    """The account's connection ids once ``settled(ids)`` holds, or after ``timeout``.

    A client's close only sends COM_QUIT: the server lists the connection until its thread
    has read it, so a check or a probe right after a close must give the server that instant.
    """
    deadline = time.monotonic() + timeout
    ids = account_connection_ids(admin)
    while not settled(ids) and time.monotonic() < deadline:
        time.sleep(0.01)
        ids = account_connection_ids(admin)
    return ids


def wait_until_settled(admin: Any, allowed: Iterable[int] = (), timeout: float = 5.0) -> None:
    """Wait until the account holds only the connections this process has open (as the
    tracker knows them) and ``allowed``."""
    from pa_dbhealth import tracker

    def settled(ids: list[int]) -> bool:
        held = {c.vendor_id for c in tracker.open_connections()}
        return set(ids) <= held | set(allowed)

    account_ids_once(admin, settled, timeout)


@pytest.fixture
def settled_ids(admin: Any) -> Callable[[Callable[[list[int]], bool]], list[int]]:
    """``account_ids_once`` for this test's admin connection."""
    return lambda settled: account_ids_once(admin, settled)


def expect_installed() -> bool:
    return os.environ.get("PA_DBHEALTH_EXPECT_INSTALLED") == "1"


@pytest.fixture
def idle_timeout(wait_timeout: Callable[[int], None]) -> Callable[[int], None]:
    """The same as ``wait_timeout``, by the name the hygiene tests use."""
    return wait_timeout


@pytest.fixture
def retrying_alias(server: sandbox.SandboxInfo) -> Iterator[str]:
    """The suite's server through pa_dbhealth's retrying backend, as the alias "retrying"."""
    alias = "retrying"
    configured = connections.configure_settings(
        {
            "default": dict(connections.settings["default"]),
            alias: server.database_settings(engine="pa_dbhealth.backends.mysql"),
        }
    )
    connections.settings[alias] = configured[alias]
    yield alias
    connections[alias].close()
    del connections[alias]
    del connections.settings[alias]


# --- PostgreSQL: a throwaway server of the suite's own, started when a test first asks ---


@pytest.fixture(scope="session")
def pg_server() -> Iterator[pgserver.PgServer]:
    """The suite's own PostgreSQL (see ``pgserver``): a role ``app`` capped at 3 connections
    and an uncapped superuser ``admin``. Tests skip when the binaries are not installed."""
    try:
        info = pgserver.start()
    except pgserver.PgMissing as exc:
        pytest.skip(f"PostgreSQL tests need the server: {exc}")
    except pgserver.PgServerError as exc:
        pytest.fail(f"cannot start the test PostgreSQL: {exc}", pytrace=False)
    yield info
    pgserver.stop(info)


@pytest.fixture
def pg_admin(pg_server: pgserver.PgServer) -> Iterator[Any]:
    """A raw psycopg connection (autocommit) of the uncapped superuser, which sees everyone."""
    with pg_server.connect(admin=True) as conn:
        yield conn


def pg_role_pids(admin: Any, role: str = "app") -> list[int]:
    """Backend pids of the role's connections, as the superuser sees them."""
    rows = admin.execute(
        "SELECT pid FROM pg_stat_activity"
        " WHERE usename = %s AND backend_type = 'client backend' ORDER BY pid",
        [role],
    )
    return [int(pid) for (pid,) in rows]


def pg_wait_for_pids(admin: Any, expected: Iterable[int], timeout: float = 10.0) -> list[int]:
    """Wait until the role's connections are ``expected``: a backend leaves
    ``pg_stat_activity`` a moment after its client closes or it is terminated."""
    wanted = sorted(expected)
    deadline = time.monotonic() + timeout
    while (pids := pg_role_pids(admin)) != wanted and time.monotonic() < deadline:
        time.sleep(0.01)
    return pids


@pytest.fixture
def pg(pg_server: pgserver.PgServer, pg_admin: Any, django_db_blocker: Any) -> Iterator[str]:
    """The alias "pg": Django's connection to the suite's PostgreSQL as the capped role, on
    its own database (no test database), with database access allowed. Each test starts
    and ends with no connection of the role."""
    alias = "pg"
    assert pg_wait_for_pids(pg_admin, []) == [], "connections of a previous test are left"
    configured = connections.configure_settings(
        {"default": dict(connections.settings["default"]), alias: pg_server.database_settings()}
    )
    connections.settings[alias] = configured[alias]
    with django_db_blocker.unblock():
        yield alias
        connections[alias].close()
    del connections[alias]
    del connections.settings[alias]


@pytest.fixture
def pg_raw(pg: str, pg_server: pgserver.PgServer, pg_admin: Any) -> Iterator[Callable[..., Any]]:
    """Open N raw psycopg connections of the capped role; closed (and gone) after the test."""
    opened: list[Any] = []

    def open_(count: int, **kwargs: Any) -> list[Any]:
        new = [pg_server.connect(**kwargs) for _ in range(count)]
        opened.extend(new)
        return new

    yield open_
    for conn in opened:
        conn.close()
    connections[pg].close()
    pg_wait_for_pids(pg_admin, [])


def dbapi(alias: str) -> Any:
    """The DB-API connection behind Django's connection to ``alias`` (opened if needed):
    what the core's vendor probes take."""
    connections[alias].ensure_connection()
    return connections[alias].connection
