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
import time
from collections.abc import Callable, Iterable, Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pgserver
import pytest
from clock import Clock
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections
from faces import FACES
from holders import Holders
from processes import Finished, Processes
from proxy import Proxy

from pa_dbhealth import sandbox

_info: sandbox.SandboxInfo | None = None
_registry: str | None = None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under the test matrix (tests/run.sh sets PA_DBHEALTH_MATRIX_ONCE_IN to one of its
    envs), tests marked ``matrix_once`` run in that env only: what they test does not
    depend on Django's version, and they take half the suite's time."""
    chosen = os.environ.get("PA_DBHEALTH_MATRIX_ONCE_IN")
    here = os.environ.get("TOX_ENV_NAME")
    if not chosen or not here or here == chosen:
        return
    skip = pytest.mark.skip(reason=f"the same on every Django version: runs in {chosen}")
    for item in items:
        if item.get_closest_marker("matrix_once"):
            item.add_marker(skip)


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
def spare_server(tmp_path: Path) -> Iterator[sandbox.SandboxInfo]:
    """A capped server of the test's own, for a test to stop, kill or freeze (see
    ``faults``); stopped and deleted after the test."""
    info = sandbox.start(tmp_path / "spare")
    yield info
    sandbox.stop(info)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    """Real processes of the test (see ``processes.py``): the test site under uWSGI,
    manage.py, python -c. All are stopped after the test, also when it failed."""
    started = Processes(tmp_path / "processes")
    try:
        yield started
    finally:
        started.stop_all()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failed test's report shows the logs of the processes it started."""
    report = yield
    started = getattr(item, "funcargs", {}).get("processes")
    if report.failed and isinstance(started, Processes) and started.started:
        report.sections.append(("logs of the test's processes", started.logs()))
    return report


@pytest.fixture(scope="module", params=FACES)
def face(request: pytest.FixtureRequest) -> str:
    """The face a scenario runs through: "django" (the backend, the middleware, manage.py)
    or "flask" (an SQLAlchemy engine with ``install()``, Flask-SQLAlchemy, ``flask``).
    Module-scoped, so a module's scene is built once per face."""
    face_name: str = request.param
    return face_name


@pytest.fixture
def holders() -> Iterator[Holders]:
    """``holders.hold(count, opener=None)``: threads that each open a connection and hold
    it until the test ends (see ``holders.py``)."""
    started = Holders()
    try:
        yield started
    finally:
        started.release_all()


@pytest.fixture
def proxy(server: sandbox.SandboxInfo) -> Iterator[Proxy]:
    """A loopback TCP proxy to the suite's server (see ``proxy.py``): a test makes the link
    stall, lag or break. Closed, with every link through it, after the test."""
    with Proxy((server.host, server.port)) as made:
        yield made


@pytest.fixture
def unblocked_db(django_db_blocker: Any) -> Iterator[None]:
    """Database access without a test database: for aliases no test may create (SQLite
    in memory, an unreachable server)."""
    with django_db_blocker.unblock():
        yield


@pytest.fixture(autouse=True)
def no_pins_yet() -> None:
    """Each test starts with no statement counted by the audit of what pins (a test's own
    SET would otherwise show up in a later test's dbcheck), in this process or any other."""
    from pa_dbhealth.core import pin_log, registry

    pin_log.forget()
    directory = pin_log.pins_directory(registry.directory(None))
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(autouse=True)
def fresh_status_and_sign_ins() -> None:
    """Each test starts with no shared anonymous status (``core.status_cache``) and no wrong
    tokens counted (``core.sign_in_limit``): all of them come from 127.0.0.1."""
    from pa_dbhealth.core import registry, sign_in_limit, status_cache

    status_cache.shared.clear()
    sign_in_limit.SignInAttempts(registry.directory(None)).forget()


@pytest.fixture(autouse=True)
def previous_connections_gone(server: sandbox.SandboxInfo) -> None:
    """Each test starts once the server has let go of what earlier tests closed: a close
    only sends COM_QUIT, and a connection still listed counts against the cap of 3."""
    conn = server.connect(admin=True)
    try:
        conn.autocommit(True)
        wait_until_settled(conn.cursor(), timeout=2.0)
    finally:
        conn.close()


@pytest.fixture
def admin(server: sandbox.SandboxInfo) -> Iterator[Any]:
    """A raw cursor of the uncapped admin account, which sees every connection."""
    conn = server.connect(admin=True)
    conn.autocommit(True)
    cursor = conn.cursor()
    yield cursor
    conn.close()


@pytest.fixture
def admin_factory(server: sandbox.SandboxInfo) -> Iterator[Callable[[], Any]]:
    """``admin_factory()``: another raw admin cursor (for a thread of its own); all are
    closed after the test."""
    opened: list[Any] = []

    def open_() -> Any:
        conn = server.connect(admin=True)
        conn.autocommit(True)
        opened.append(conn)
        return conn.cursor()

    yield open_
    for conn in opened:
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


def run_command(name: str, *args: str) -> Finished:
    """Run a management command in this process: ``(stdout, stderr, exit code)``, where a
    CommandError is its message on stderr and its return code."""
    out, err = StringIO(), StringIO()
    try:
        call_command(name, *args, stdout=out, stderr=err, no_color=True)
    except CommandError as exc:
        return Finished(out.getvalue(), err.getvalue() + str(exc), exc.returncode)
    return Finished(out.getvalue(), err.getvalue(), 0)


def account_connection_ids(admin: Any, user: str = "app") -> list[int]:
    """Ids of the account's connections, as the uncapped admin sees them."""
    admin.execute(
        "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s ORDER BY ID", [user]
    )
    return [int(row[0]) for row in admin.fetchall()]


def connections_accepted(admin: Any) -> int:
    """How many connections the server has accepted since it started, every account's."""
    admin.execute("SHOW GLOBAL STATUS LIKE 'Connections'")
    return int(admin.fetchone()[1])


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
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """This process's clock, moved forward by ``clock.advance(seconds)`` (see ``clock.py``)."""
    return Clock(monkeypatch)


@pytest.fixture
def pause(clock: Clock, admin: Any) -> Callable[[float], None]:
    """``pause(seconds)``: what ``time.sleep(seconds)`` does to the test's connections,
    without the wait. The process's clock moves on, so pa_dbhealth sees them idle that long;
    and when the pause outlasts the server's wait_timeout, the account's idle connections are
    dropped as the server would drop them (KILL: the client meets the same 2013 on its next
    query). For rules that compare idle time with a limit; a test of the server's own
    timeout keeps a real wait."""

    def pause_(seconds: float) -> None:
        admin.execute("SELECT @@global.wait_timeout")
        (timeout,) = admin.fetchone()
        if seconds > timeout:
            admin.execute(
                "SELECT ID FROM information_schema.PROCESSLIST"
                " WHERE USER = %s AND COMMAND = 'Sleep'",
                ["app"],
            )
            idle = {int(row[0]) for row in admin.fetchall()}
            for conn_id in idle:
                with contextlib.suppress(Exception):  # it may have closed meanwhile
                    admin.execute("KILL CONNECTION %s", [conn_id])
            account_ids_once(admin, lambda ids: not idle & set(ids))
        clock.advance(seconds)

    return pause_


@pytest.fixture
def without_the_line() -> Iterator[None]:
    """The host's line off (the handoff tests: with the line, a closing connection's token
    goes to whoever waited longest, anywhere)."""
    from django.test import override_settings
    from handoff_faces import NO_LINE

    with override_settings(PA_DBHEALTH=NO_LINE):
        yield


@pytest.fixture
def settings_of(server: Any) -> Callable[..., dict[str, Any]]:
    """``settings_of(**overrides)``: a settings dict of the retrying backend for the suite's
    server, with Django's defaults filled in."""

    def make(**overrides: Any) -> dict[str, Any]:
        settings_dict = {**server.database_settings(engine="pa_dbhealth.backends.mysql")}
        settings_dict.update(overrides)
        return dict(connections.configure_settings({"default": settings_dict})["default"])

    return make


@pytest.fixture
def slow_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Waits of 20-30 s between attempts: only a handoff or the deadline ends one."""
    from pa_dbhealth.core import retry

    monkeypatch.setattr(retry, "FIRST_DELAY", 30.0)
    monkeypatch.setattr(retry, "MAX_DELAY", 30.0)


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


AddAlias = Callable[[str, dict[str, Any]], str]


@pytest.fixture
def temporary_alias() -> Iterator[AddAlias]:
    """``temporary_alias(alias, settings_dict)`` adds a ``DATABASES`` alias (with Django's
    defaults filled in) for this test; after it, its connection is closed and it is gone."""
    added: list[str] = []

    def add(alias: str, settings_dict: dict[str, Any]) -> str:
        configured = connections.configure_settings(
            {"default": dict(connections.settings["default"]), alias: settings_dict}
        )
        connections.settings[alias] = configured[alias]
        added.append(alias)
        return alias

    yield add
    for alias in reversed(added):
        connections[alias].close()
        del connections[alias]
        del connections.settings[alias]


@pytest.fixture
def retrying_line(server: sandbox.SandboxInfo) -> Iterator[tuple[dict[str, Any], Any]]:
    """The retrying backend's settings for the suite's server (as Django completes them),
    and the account's line made afresh (cap 3); removed after the test."""
    from outsiders import retrying_settings

    from pa_dbhealth.core import line as lines
    from pa_dbhealth.holders import server_of

    settings_dict = retrying_settings(server)
    where = server_of(settings_dict, "mysql")
    lines.forget(*where)
    lines.note_cap(*where, 3)
    line = lines.line_for(*where)
    assert line is not None
    yield settings_dict, line
    lines.forget(*where)


@pytest.fixture
def retrying_alias(server: sandbox.SandboxInfo, temporary_alias: AddAlias) -> str:
    """The suite's server through pa_dbhealth's retrying backend, as the alias "retrying"."""
    return temporary_alias(
        "retrying", server.database_settings(engine="pa_dbhealth.backends.mysql")
    )


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
def pg(
    pg_server: pgserver.PgServer,
    pg_admin: Any,
    django_db_blocker: Any,
    temporary_alias: AddAlias,
) -> Iterator[str]:
    """The alias "pg": Django's connection to the suite's PostgreSQL as the capped role, on
    its own database (no test database), with database access allowed. Each test starts
    and ends with no connection of the role."""
    assert pg_wait_for_pids(pg_admin, []) == [], "connections of a previous test are left"
    alias = temporary_alias("pg", pg_server.database_settings())
    with django_db_blocker.unblock():
        yield alias
        connections[alias].close()


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


# --- SQLAlchemy and Flask: engines on the suite's servers, disposed after each test --------


def sqlalchemy_url(info: Any, driver: str = "mysqldb", **query: str) -> str:
    """An SQLAlchemy URL for the capped account of a sandbox (``server``) or ``pg_server``."""
    from urllib.parse import quote, urlencode

    scheme = "postgresql+psycopg" if driver == "psycopg" else f"mysql+{driver}"
    auth = f"{quote(info.user, safe='')}:{quote(info.password, safe='')}"
    suffix = f"?{urlencode(query)}" if query else ""
    return f"{scheme}://{auth}@{info.host}:{info.port}/{info.database}{suffix}"


@pytest.fixture
def make_engine(admin: Any) -> Iterator[Callable[..., Any]]:
    """``make_engine(url=None, **create_engine_kwargs)``: engines (default: the suite's
    MySQL server through mysqlclient) disposed after the test, which starts and ends with
    the account holding only what Django's tracker knows of."""
    from sqlalchemy import create_engine

    from pa_dbhealth.sqlalchemy import events

    assert _info is not None
    events.LEARNED.forget()
    wait_until_settled(admin)
    made: list[Any] = []

    def make(url: str | None = None, **kwargs: Any) -> Any:
        engine = create_engine(url or sqlalchemy_url(_info), **kwargs)
        made.append(engine)
        return engine

    yield make
    for engine in made:
        engine.dispose()
    events.LEARNED.forget()
    wait_until_settled(admin)
