"""The probes' figures are checked against what the real server has."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import dbapi
from django.db import connections

from pa_dbhealth.core import vendors

mysql = pytest.mark.django_db(transaction=True)


@mysql
def test_server_facts_match_the_server(server: Any, admin: Any) -> None:
    facts = vendors.server_facts(dbapi("default"))
    admin.execute("SELECT VERSION(), @@global.max_connections, @@global.net_read_timeout")
    version, max_connections, net_read = admin.fetchone()
    assert facts.vendor == "mysql"
    assert facts.flavour == server.flavour == ("MariaDB" if "MariaDB" in version else "MySQL")
    assert facts.version == version
    assert facts.applicable is True
    assert facts.wait_timeout == 300 == facts.interactive_timeout
    assert facts.net_read_timeout == net_read == 30
    assert facts.max_connections == max_connections
    assert facts.account_limit == 3
    assert facts.user.startswith("app@")
    assert facts.connection_id == connections["default"].connection.thread_id()


@mysql
def test_wait_timeout_is_read_back(wait_timeout: Any) -> None:
    wait_timeout(7)
    assert vendors.server_facts(dbapi("default")).wait_timeout == 7
    assert vendors.account_snapshot(dbapi("default")).wait_timeout == 7


@mysql
def test_snapshot_counts_the_account_connections(raw_connections: Any, account_ids: Any) -> None:
    before = vendors.account_snapshot(dbapi("default"))
    assert [c.id for c in before.connections] == account_ids()
    assert before.total == 1
    assert [c.this_connection for c in before.connections] == [True]
    raw_connections(2)
    after = vendors.account_snapshot(dbapi("default"))
    assert after.total == before.total + 2
    assert [c.id for c in after.connections] == account_ids()
    assert after.account_limit == 3
    assert after.headroom == 0
    assert after.sleeping == 2  # the raw ones wait for their client
    assert after.active == 1  # the probe itself is running a query
    assert all(c.user == "app" for c in after.connections)


@mysql
def test_idle_time_grows(raw_connections: Any) -> None:
    (raw,) = raw_connections(1)
    time.sleep(2.2)
    snapshot = vendors.account_snapshot(dbapi("default"))
    (idle,) = [c for c in snapshot.connections if c.id == raw.thread_id()]
    assert idle.idle and idle.command == "Sleep"
    assert idle.idle_seconds >= 2
    assert snapshot.longest_idle_seconds >= 2


@mysql
def test_other_accounts_are_not_listed(admin: Any) -> None:
    admin.execute("SELECT CONNECTION_ID()")
    admin_id = admin.fetchone()[0]
    ids = [c.id for c in vendors.account_snapshot(dbapi("default")).connections]
    assert admin_id not in ids


@mysql
def test_kill_only_own_idle_connections(
    raw_connections: Any, admin: Any, account_ids: Any, settled_ids: Any
) -> None:
    (raw,) = raw_connections(1)
    admin.execute("SELECT CONNECTION_ID()")
    admin_id = admin.fetchone()[0]
    own = dbapi("default").thread_id()
    result = vendors.kill_idle(
        dbapi("default"), [raw.thread_id(), own, admin_id, 999999], include_transactions=True
    )
    assert result.killed == [raw.thread_id()]
    assert result.spared == {own: "gone", admin_id: "gone", 999999: "gone"}
    assert raw.thread_id() not in settled_ids(lambda ids: raw.thread_id() not in ids)
    assert own in account_ids()
    admin.execute("SELECT 1")  # the admin connection is alive


@mysql
def test_kill_spares_what_the_capped_account_cannot_see_into(raw_connections: Any) -> None:
    """Without the PROCESS privilege (as on PythonAnywhere) the server does not show whether
    an idle connection is inside a transaction: it is spared unless asked."""
    (raw,) = raw_connections(1, autocommit=True)
    result = vendors.kill_idle(dbapi("default"), [raw.thread_id()])
    assert result.killed == [] and result.spared == {raw.thread_id(): "transaction unknown"}
    raw.cursor().execute("SELECT 1")  # alive


@mysql
def test_kill_spares_a_connection_busy_again_since_the_listing(raw_connections: Any) -> None:
    (raw,) = raw_connections(1)
    victim = raw.thread_id()
    worker = threading.Thread(target=raw.cursor().execute, args=("SELECT SLEEP(1.5)",))
    worker.start()
    time.sleep(0.3)
    try:
        result = vendors.kill_idle(dbapi("default"), [victim], include_transactions=True)
    finally:
        worker.join()
    assert result.killed == [] and result.spared == {victim: "busy"}


@pytest.fixture
def at_account(server: Any, admin: Any) -> Iterator[Callable[..., Any]]:
    """Accounts of the test's own: ``at_account(name, *grants)`` creates one (capped at 3,
    with ALL on the sandbox's database and ``grants`` on *.*) and returns a function that
    opens raw connections as it. All are dropped after the test."""
    made: list[str] = []
    opened: list[Any] = []

    def make(name: str, *grants: str) -> Callable[..., Any]:
        admin.execute("CREATE USER %s@'%%' IDENTIFIED BY 'pw' WITH MAX_USER_CONNECTIONS 3", [name])
        made.append(name)
        admin.execute(f"GRANT ALL ON `{server.database}`.* TO %s@'%%'", [name])
        if grants:
            admin.execute(f"GRANT {', '.join(grants)} ON *.* TO %s@'%%'", [name])

        def open_(**kwargs: Any) -> Any:
            conn = server.connect(user=name, password="pw", autocommit=True, **kwargs)
            opened.append(conn)
            return conn

        return open_

    yield make
    for conn in opened:
        with contextlib.suppress(Exception):
            conn.close()
    for name in made:
        admin.execute("DROP USER %s@'%%'", [name])


def test_an_account_name_with_at_signs_is_its_own(at_account: Any) -> None:
    """'ops@example.com' is not 'ops': without PROCESS it still lists its own connections;
    with PROCESS and SUPER, it lists and kills only its own, never the account 'ops'."""
    plain = at_account("ops@example.com")
    probe = plain()
    snapshot = vendors.account_snapshot(probe)
    assert [c.id for c in snapshot.connections] == [probe.thread_id()]
    assert snapshot.account_limit == 3 and snapshot.total == 1

    other = at_account("ops")()
    powerful = at_account("root@example.com", "PROCESS", "SUPER")
    mine, idle = powerful(), powerful()
    listed = {c.id for c in vendors.account_snapshot(mine).connections}
    assert listed == {mine.thread_id(), idle.thread_id()}
    time.sleep(1.1)  # idle for a second: its (absent) transaction shows for sure
    result = vendors.kill_idle(mine, [other.thread_id(), idle.thread_id()])
    assert result.killed == [idle.thread_id()]
    assert result.spared == {other.thread_id(): "gone"}
    other.cursor().execute("SELECT 1")  # the other account's connection is alive


def test_kill_spares_an_idle_connection_inside_a_transaction(at_account: Any, server: Any) -> None:
    open_ = at_account("watcher", "PROCESS", "SUPER")
    mine, clean, busy = open_(), open_(), open_()
    cursor = busy.cursor()
    cursor.execute("CREATE TABLE IF NOT EXISTS kept (x INT) ENGINE=InnoDB")
    cursor.execute("START TRANSACTION")
    cursor.execute("INSERT INTO kept VALUES (42)")  # then idle (Sleep) inside its transaction
    result = vendors.kill_idle(mine, [clean.thread_id(), busy.thread_id()])
    # Idle for less than a second, a connection's transaction may not show yet: spared.
    assert result.killed == []
    assert result.spared[clean.thread_id()] == "transaction unknown"
    time.sleep(1.1)
    result = vendors.kill_idle(mine, [clean.thread_id(), busy.thread_id()], min_idle=1)
    assert result.killed == [clean.thread_id()]
    assert result.spared == {busy.thread_id(): "in transaction"}
    cursor.execute("COMMIT")
    cursor.execute("SELECT x FROM kept")
    assert cursor.fetchall() == ((42,),)
    cursor.execute("DROP TABLE kept")


@mysql
def test_the_fourth_connection_of_the_capped_account_fails_with_1226(raw_connections: Any) -> None:
    connections["default"].ensure_connection()
    raw_connections(2)
    with pytest.raises(Exception) as excinfo:
        raw_connections(1)
    assert excinfo.value.args[0] == 1226
    assert "max_user_connections" in excinfo.value.args[1]


@mysql
def test_idle_connection_dies_after_wait_timeout(wait_timeout: Any, raw_connections: Any) -> None:
    wait_timeout(2)
    (raw,) = raw_connections(1)
    time.sleep(3.5)
    with pytest.raises(Exception) as excinfo:
        raw.cursor().execute("SELECT 1")
    assert excinfo.value.args[0] in (2006, 2013, 4031)


def test_sqlite_is_not_applicable() -> None:
    connection = sqlite3.connect(":memory:")
    assert vendors.vendor_of(connection) == "sqlite"
    assert vendors.is_applicable("sqlite") is False
    facts = vendors.not_applicable("sqlite", "SQLite")
    assert facts.applicable is False
    assert facts.flavour == "SQLite"
    assert "not a server" in facts.note
    assert facts.wait_timeout is None and facts.account_limit is None
    with pytest.raises(ValueError, match="cannot ask a 'sqlite' server"):
        vendors.account_snapshot(connection)


def test_the_cap_of_now_on_a_connection_older_than_the_change(at_account: Any, admin: Any) -> None:
    """A connection keeps the cap it logged in with; ``fresh_cap`` reads the account's as
    the server has it now: raised, and removed (then the server-wide one, none here)."""
    probe = at_account("recapped")()
    admin.execute("ALTER USER 'recapped'@'%' WITH MAX_USER_CONNECTIONS 5")
    assert vendors.account_snapshot(probe).account_limit == 3
    assert vendors.account_snapshot(probe, fresh_cap=True).account_limit == 5
    admin.execute("ALTER USER 'recapped'@'%' WITH MAX_USER_CONNECTIONS 0")
    admin.execute("SELECT @@global.max_user_connections")
    (server_wide,) = admin.fetchone()
    assert vendors.account_snapshot(probe, fresh_cap=True).account_limit == (server_wide or None)
