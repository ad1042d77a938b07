"""The suite's own capped MariaDB/MySQL server, started once per session.

Every test that touches MySQL talks to this server: an ``app`` account capped at
3 connections (like PythonAnywhere's) and an uncapped ``admin`` account for watching.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings
from django.db import connections

from pa_dbhealth import sandbox

_info: sandbox.SandboxInfo | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _info
    if hasattr(config, "workerinput"):
        return
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
