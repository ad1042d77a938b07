"""The tests' loopback proxy, between a real client and the suite's real server."""

from __future__ import annotations

import socket
import time
from typing import Any

import MySQLdb
import pytest
from conftest import account_connection_ids, account_ids_once
from proxy import Proxy

from pa_dbhealth.core.errors import Kind, classify
from pa_dbhealth.sandbox import SandboxInfo

pytestmark = pytest.mark.matrix_once  # the same on every Django version


def select_one(conn: Any) -> Any:
    cursor = conn.cursor()
    cursor.execute("SELECT 1")
    return cursor.fetchone()


def app_rows(admin: Any) -> list[tuple[int, str, str]]:
    """(id, user, command) of the connections that are not the admin's."""
    admin.execute(
        "SELECT ID, USER, COMMAND FROM information_schema.PROCESSLIST"
        " WHERE USER <> %s AND ID <> CONNECTION_ID() ORDER BY ID",
        ["system user"],
    )
    return [(int(i), u, c) for i, u, c in admin.fetchall() if u != "admin"]


def test_forwards_both_ways(proxy: Proxy, server: SandboxInfo, admin: Any) -> None:
    conn = server.connect(port=proxy.port)
    cursor = conn.cursor()
    cursor.execute("SELECT CONNECTION_ID()")
    (own,) = cursor.fetchone()
    assert own in account_connection_ids(admin)
    assert proxy.links == 1
    conn.close()
    assert own not in account_ids_once(admin, lambda ids: own not in ids)
    deadline = time.monotonic() + 5
    while proxy.links and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proxy.links == 0


def test_stall_silences_an_open_link_without_closing_it(
    proxy: Proxy, server: SandboxInfo, admin: Any
) -> None:
    conn = server.connect(port=proxy.port, read_timeout=1)
    assert select_one(conn) == (1,)
    own = conn.thread_id()
    proxy.stall()
    with pytest.raises(MySQLdb.OperationalError) as silent:
        select_one(conn)
    assert classify(silent.value).kind is Kind.LOST
    assert silent.value.args[0] == 2013
    # The server never heard the query, nor the client giving up: it still holds the link.
    assert own in account_connection_ids(admin)
    assert proxy.links == 1


def test_a_new_link_while_stalled_gets_no_greeting(
    proxy: Proxy, server: SandboxInfo, admin: Any
) -> None:
    before = {row[0] for row in app_rows(admin)}
    proxy.stall()
    with pytest.raises(MySQLdb.OperationalError) as silent:
        server.connect(port=proxy.port, connect_timeout=1)
    assert silent.value.args[0] == 2013
    assert "initial communication packet" in silent.value.args[1]
    # The server did accept it (and greeted): a connection that never logged in.
    new = [user for id_, user, _command in app_rows(admin) if id_ not in before]
    assert new == ["unauthenticated user"]


def test_stall_after_handshake_logs_in_then_goes_silent(
    proxy: Proxy, server: SandboxInfo, admin: Any
) -> None:
    before = {row[0] for row in app_rows(admin)}
    proxy.stall(after_handshake=True)
    # mysqlclient's connect logs in, then sends its first command (SET NAMES): it never
    # gets the answer.
    with pytest.raises(MySQLdb.OperationalError) as silent:
        server.connect(port=proxy.port, read_timeout=1)
    assert silent.value.args[0] == 2013
    assert classify(silent.value).kind is Kind.LOST
    new = [(user, command) for id_, user, command in app_rows(admin) if id_ not in before]
    assert new == [("app", "Sleep")]  # logged in, and waiting for a command
    proxy.heal()
    assert select_one(server.connect(port=proxy.port)) == (1,)  # new links pass again


def test_delay_holds_every_byte_back(proxy: Proxy, server: SandboxInfo) -> None:
    conn = server.connect(port=proxy.port)
    proxy.delay(0.25)
    started = time.monotonic()
    assert select_one(conn) == (1,)
    assert time.monotonic() - started >= 0.5  # the query and its answer, each 0.25 s late
    proxy.delay(0)
    conn.close()


def test_a_delay_below_a_millisecond_is_kept(proxy: Proxy, server: SandboxInfo) -> None:
    # bench/open_loop.py --rtt-ms: a network's round trip of a fraction of a millisecond.
    # The selector waits whole milliseconds: each hop would take 1 ms at least.
    conn = server.connect(port=proxy.port)
    proxy.delay(0.0002)
    trips = []
    for _ in range(20):
        started = time.monotonic()
        assert select_one(conn) == (1,)
        trips.append(time.monotonic() - started)
    conn.close()
    assert 0.0004 <= min(trips) < 0.0015, f"{min(trips) * 1000:.2f} ms"


def test_cut_resets_every_link_and_new_ones_still_pass(
    proxy: Proxy, server: SandboxInfo, admin: Any
) -> None:
    first, second = server.connect(port=proxy.port), server.connect(port=proxy.port)
    ids = {first.thread_id(), second.thread_id()}
    proxy.cut()
    assert proxy.links == 0
    for conn in (first, second):
        with pytest.raises(MySQLdb.OperationalError) as lost:
            select_one(conn)
        assert classify(lost.value).kind is Kind.LOST
    assert not ids & set(account_ids_once(admin, lambda now: not ids & set(now)))
    assert select_one(server.connect(port=proxy.port)) == (1,)


def test_close_stops_listening(server: SandboxInfo) -> None:
    proxy = Proxy((server.host, server.port))
    conn = server.connect(port=proxy.port)
    proxy.close()
    with pytest.raises(MySQLdb.OperationalError):
        select_one(conn)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((proxy.host, proxy.port), timeout=2)
