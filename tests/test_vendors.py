"""The probes' figures are checked against what the real server has."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.db import connections
from django.db.utils import OperationalError

from pa_dbhealth import vendors

mysql = pytest.mark.django_db(transaction=True)


@mysql
def test_server_facts_match_the_server(server: Any, admin: Any) -> None:
    facts = vendors.server_facts(connections["default"])
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
    assert vendors.server_facts(connections["default"]).wait_timeout == 7
    assert vendors.account_snapshot(connections["default"]).wait_timeout == 7


@mysql
def test_snapshot_counts_the_account_connections(raw_connections: Any, account_ids: Any) -> None:
    before = vendors.account_snapshot(connections["default"])
    assert [c.id for c in before.connections] == account_ids()
    assert before.total == 1
    assert [c.this_connection for c in before.connections] == [True]
    raw_connections(2)
    after = vendors.account_snapshot(connections["default"])
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
    snapshot = vendors.account_snapshot(connections["default"])
    (idle,) = [c for c in snapshot.connections if c.id == raw.thread_id()]
    assert idle.idle and idle.command == "Sleep"
    assert idle.idle_seconds >= 2
    assert snapshot.longest_idle_seconds >= 2


@mysql
def test_other_accounts_are_not_listed(admin: Any) -> None:
    admin.execute("SELECT CONNECTION_ID()")
    admin_id = admin.fetchone()[0]
    ids = [c.id for c in vendors.account_snapshot(connections["default"]).connections]
    assert admin_id not in ids


@mysql
def test_kill_only_own_idle_connections(
    raw_connections: Any, admin: Any, account_ids: Any, settled_ids: Any
) -> None:
    connections["default"].ensure_connection()
    (raw,) = raw_connections(1)
    admin.execute("SELECT CONNECTION_ID()")
    admin_id = admin.fetchone()[0]
    own = connections["default"].connection.thread_id()
    killed = vendors.kill_connections(
        connections["default"], [raw.thread_id(), own, admin_id, 999999]
    )
    assert killed == [raw.thread_id()]
    assert raw.thread_id() not in settled_ids(lambda ids: raw.thread_id() not in ids)
    assert own in account_ids()
    admin.execute("SELECT 1")  # the admin connection is alive


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


@pytest.mark.usefixtures("unblocked_db")
def test_sqlite_is_not_applicable() -> None:
    connection = connections["sqlite"]
    facts = vendors.server_facts(connection)
    assert facts.applicable is False
    assert facts.flavour == "SQLite"
    assert "not a server" in facts.note
    assert facts.wait_timeout is None and facts.account_limit is None
    assert vendors.account_snapshot(connection).total == 0
    assert vendors.kill_connections(connection, [1]) == []
    assert vendors.is_applicable(connection) is False


@pytest.mark.usefixtures("unblocked_db")
def test_unreachable_server_raises_operational_error_with_host_and_port() -> None:
    from pa_dbhealth.errors import Kind, classify

    with pytest.raises(OperationalError) as excinfo:
        vendors.server_facts(connections["unreachable"])
    classified = classify(excinfo.value)
    assert classified.kind is Kind.UNREACHABLE
    assert classified.code in (2002, 2003)
    assert "127.0.0.1" in classified.message
