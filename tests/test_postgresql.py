"""PostgreSQL against a real server: the suite's own, a role capped at 3 connections.

Every figure is read back from the server as its superuser sees it (``pg_admin``).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import pytest
from conftest import dbapi, pg_role_pids, pg_wait_for_pids, run_command
from django.db import connections, transaction
from django.db.utils import OperationalError
from django.test import Client

from pa_dbhealth import health
from pa_dbhealth.core import vendors
from pa_dbhealth.core.errors import Kind, classify

psycopg = pytest.importorskip("psycopg")

Raw = Callable[..., list[Any]]
TOKEN = "a-health-token-for-the-tests"


def backend_pid(alias: str) -> int:
    pid: int = connections[alias].connection.info.backend_pid
    return pid


# --- vendors: the figures are the server's ------------------------------------------------


def test_server_facts_match_the_server(pg: str, pg_server: Any, pg_admin: Any) -> None:
    facts = vendors.server_facts(dbapi(pg))
    version, max_connections = pg_admin.execute(
        "SELECT current_setting('server_version'), current_setting('max_connections')::int"
    ).fetchone()
    assert (facts.vendor, facts.flavour, facts.applicable) == ("postgresql", "PostgreSQL", True)
    assert facts.version == version
    assert facts.max_connections == max_connections == 20
    assert facts.account_limit == 3  # the role's CONNECTION LIMIT (pg_roles.rolconnlimit)
    assert facts.wait_timeout == pg_server.idle_session_timeout == 300
    assert facts.idle_in_transaction_timeout == 60
    assert facts.net_read_timeout is None and facts.interactive_timeout is None
    assert facts.user == "app"
    assert facts.connection_id == backend_pid(pg)


@pytest.mark.parametrize("extra", [0, 2])
def test_snapshot_counts_the_role_connections(
    pg: str, pg_raw: Raw, pg_admin: Any, extra: int
) -> None:
    raws = pg_raw(extra)
    snapshot = vendors.account_snapshot(dbapi(pg))
    own = backend_pid(pg)
    assert snapshot.total == extra + 1
    assert [c.id for c in snapshot.connections] == pg_role_pids(pg_admin)
    assert [c.id for c in snapshot.connections if c.this_connection] == [own]
    assert {c.id for c in snapshot.connections if c.idle} == {r.info.backend_pid for r in raws}
    assert (snapshot.sleeping, snapshot.active) == (extra, 1)  # the probe itself is running
    assert snapshot.account_limit == 3 and snapshot.headroom == 2 - extra
    assert snapshot.wait_timeout == 300
    assert all(c.user == "app" and c.db == "app" for c in snapshot.connections)
    assert all(c.host == "127.0.0.1" for c in snapshot.connections)


def test_other_roles_are_not_listed(pg: str, pg_admin: Any) -> None:
    admin_pid = pg_admin.info.backend_pid
    listed = [c.id for c in vendors.account_snapshot(dbapi(pg)).connections]
    assert listed == [backend_pid(pg)]
    assert admin_pid in [row[0] for row in pg_admin.execute("SELECT pid FROM pg_stat_activity")]


def test_idle_time_grows(pg: str, pg_raw: Raw) -> None:
    (raw,) = pg_raw(1)
    first = vendors.account_snapshot(dbapi(pg))
    time.sleep(1.2)
    later = vendors.account_snapshot(dbapi(pg))
    (before,) = [c for c in first.connections if c.id == raw.info.backend_pid]
    (after,) = [c for c in later.connections if c.id == raw.info.backend_pid]
    assert before.idle and after.idle and after.command == "idle"
    assert after.idle_seconds >= before.idle_seconds + 1
    assert later.longest_idle_seconds == after.idle_seconds


def test_idle_seconds_are_never_overstated(pg: str, pg_raw: Raw) -> None:
    """Whole seconds idle, rounded down as MySQL's TIME is: ``--kill-idle 1`` must not kill
    a connection idle for 0.6 s."""
    started = time.monotonic()
    (raw,) = pg_raw(1)
    time.sleep(0.6)
    snapshot = vendors.account_snapshot(dbapi(pg))
    elapsed = time.monotonic() - started
    (idle,) = [c for c in snapshot.connections if c.id == raw.info.backend_pid]
    assert idle.idle_seconds <= elapsed


def test_idle_seconds_inside_a_transaction(pg: str, pg_raw: Raw) -> None:
    """now() is the transaction's start: the clock must be the statement's."""
    (raw,) = pg_raw(1)
    with transaction.atomic(using=pg):
        with connections[pg].cursor() as cursor:
            cursor.execute("SELECT 1")  # the transaction has begun
        time.sleep(1.2)
        snapshot = vendors.account_snapshot(dbapi(pg))
    (idle,) = [c for c in snapshot.connections if c.id == raw.info.backend_pid]
    assert idle.idle_seconds >= 1
    assert all(c.seconds >= 0 for c in snapshot.connections)


def test_kill_only_own_idle_connections(pg: str, pg_raw: Raw, pg_admin: Any) -> None:
    (raw,) = pg_raw(1)
    connections[pg].ensure_connection()
    own, theirs, admin_pid = backend_pid(pg), raw.info.backend_pid, pg_admin.info.backend_pid
    result = vendors.kill_idle(dbapi(pg), [theirs, own, admin_pid, 999999])
    assert result.killed == [theirs]
    assert result.spared == {own: "gone", admin_pid: "gone", 999999: "gone"}
    assert pg_wait_for_pids(pg_admin, [own]) == [own]
    assert pg_admin.execute("SELECT 1").fetchone() == (1,)  # the superuser's is alive
    with pytest.raises(psycopg.OperationalError) as excinfo:
        raw.execute("SELECT 1")
    assert excinfo.value.sqlstate == "57P01"  # admin_shutdown: pg_terminate_backend
    assert classify(excinfo.value).kind is Kind.LOST
    with pytest.raises(psycopg.OperationalError) as again:
        raw.execute("SELECT 1")
    assert str(again.value) == "the connection is closed"
    assert classify(again.value).kind is Kind.LOST


def test_kill_spares_idle_in_transaction_unless_asked(pg: str, pg_raw: Raw, pg_admin: Any) -> None:
    clean, busy = pg_raw(2)
    busy.execute("BEGIN")
    busy.execute("SELECT 1")  # now idle in transaction
    ids = [clean.info.backend_pid, busy.info.backend_pid]
    time.sleep(1.1)
    result = vendors.kill_idle(dbapi(pg), ids, min_idle=1)
    assert result.killed == [clean.info.backend_pid]
    assert result.spared == {busy.info.backend_pid: "in transaction"}
    busy.execute("SELECT 1")  # still alive, still in its transaction
    result = vendors.kill_idle(dbapi(pg), [busy.info.backend_pid], include_transactions=True)
    assert result.killed == [busy.info.backend_pid]


def test_kill_spares_a_connection_busy_again_since_the_listing(pg: str, pg_raw: Raw) -> None:
    (raw,) = pg_raw(1)
    worker = threading.Thread(target=raw.execute, args=("SELECT pg_sleep(1.5)",))
    worker.start()
    time.sleep(0.3)
    try:
        result = vendors.kill_idle(dbapi(pg), [raw.info.backend_pid])
    finally:
        worker.join()
    assert result.killed == [] and result.spared == {raw.info.backend_pid: "busy"}
    assert raw.execute("SELECT 1").fetchone() == (1,)


def test_the_session_role_is_the_account(pg: str, pg_raw: Raw, pg_admin: Any) -> None:
    """With Django's OPTIONS["assume_role"] the connection runs as another role, but the
    connections and the cap are those of the role that logged in (session_user)."""
    (raw,) = pg_raw(1)
    pg_admin.execute("CREATE ROLE reader NOLOGIN")
    try:
        pg_admin.execute("GRANT reader TO app")
        connections.settings[pg]["OPTIONS"] = {"assume_role": "reader"}
        with connections[pg].cursor() as cursor:
            cursor.execute("SELECT current_user")
            assert cursor.fetchone() == ("reader",)
        facts = vendors.server_facts(dbapi(pg))
        snapshot = vendors.account_snapshot(dbapi(pg))
        assert (facts.user, facts.account_limit) == ("app", 3)
        assert (snapshot.account_limit, snapshot.total, snapshot.headroom) == (3, 2, 1)
        assert [c.id for c in snapshot.connections] == pg_role_pids(pg_admin)
        assert [c.id for c in snapshot.connections if c.this_connection] == [backend_pid(pg)]
    finally:
        connections[pg].close()
        pg_wait_for_pids(pg_admin, [raw.info.backend_pid])
        pg_admin.execute("DROP ROLE reader")


# --- errors: what psycopg raises, classified --------------------------------------------------


def test_the_fourth_connection_of_the_capped_role_is_the_cap(pg: str, pg_raw: Raw) -> None:
    pg_raw(3)
    with pytest.raises(psycopg.OperationalError) as raw_error:
        pg_raw(1)
    with pytest.raises(OperationalError) as django_error:  # Django's, with psycopg's as cause
        connections[pg].ensure_connection()
    for error in (raw_error.value, django_error.value):
        classified = classify(error)
        assert 'too many connections for role "app"' in classified.message
        assert classified.kind is Kind.ACCOUNT_CAP  # the role's cap, not the server's
        assert classified.kind.is_cap
        assert classified.short.startswith("(53300) ")


@pytest.mark.parametrize(
    ("held", "words"),
    [(17, "remaining connection slots are reserved"), (20, "too many clients already")],
)
def test_a_full_server_is_too_many(pg_server: Any, held: int, words: str) -> None:
    """max_connections 20, 3 of them reserved for superusers: the server is full for the
    role before its own cap is."""
    admins = [pg_server.connect(admin=True) for _ in range(held)]
    try:
        with pytest.raises(psycopg.OperationalError) as excinfo:
            pg_server.connect()
    finally:
        for conn in admins:
            conn.close()
    classified = classify(excinfo.value)
    assert words in classified.message
    assert classified.kind is Kind.TOO_MANY and classified.kind.is_cap


@pytest.mark.parametrize(
    ("setting", "autocommit", "sqlstate"),
    [
        ("idle_session_timeout", True, "57P05"),
        ("idle_in_transaction_session_timeout", False, "25P03"),
    ],
)
def test_a_connection_dropped_by_an_idle_timeout_is_lost(
    pg_raw: Raw, setting: str, autocommit: bool, sqlstate: str
) -> None:
    (raw,) = pg_raw(1, autocommit=autocommit)
    raw.execute(f"SET {setting} = '1s'")  # in a transaction when not in autocommit mode
    time.sleep(1.3)
    with pytest.raises(psycopg.Error) as dropped:  # 25P03 is an InternalError
        raw.execute("SELECT 1")
    assert dropped.value.sqlstate == sqlstate
    assert classify(dropped.value).kind is Kind.LOST
    with pytest.raises(psycopg.Error) as again:
        raw.execute("SELECT 1")
    assert classify(again.value).kind is Kind.LOST  # "the connection is closed", or the same


# --- dbcheck: the audit of a PostgreSQL alias --------------------------------------------------


def assert_no_mysql_words(report: str) -> None:
    """No MySQL error, variable or backend in advice for a PostgreSQL alias."""
    for word in ("2006", "1226", "2013", "max_user_connections", "wait_timeout", "backends.mysql"):
        assert word not in report, word


def audit_ids(alias: str) -> list[str]:
    out, err, _ = run_command(
        "dbcheck", "--database", alias, "--format", "json", "--fail-level", "info"
    )
    report = json.loads(out)["databases"][alias]
    assert report["source"] == "server", err
    return [f["id"] for f in report["findings"]]


@pytest.mark.parametrize(("age", "expected"), [(600, True), (281, True), (280, False)])
def test_dbcheck_conn_max_age_against_idle_session_timeout(
    pg: str, settings: Any, age: int, expected: bool
) -> None:
    settings.PA_DBHEALTH = {"WORKERS": 2}
    connections.settings[pg].update(CONN_MAX_AGE=age, CONN_HEALTH_CHECKS=True)
    found = audit_ids(pg)
    assert ("pa_dbhealth.E004" in found) is expected
    assert "pa_dbhealth.I012" not in found  # net_read_timeout is MySQL's
    assert "pa_dbhealth.I020" not in found  # idle_in_transaction_session_timeout is set
    if expected:
        out, _, code = run_command("dbcheck", "--database", pg)
        assert code == 1
        assert f"CONN_MAX_AGE'] = {age} but the server closes connections idle for 300 s" in out
        assert "idle-session timeout" in out
        assert_no_mysql_words(out)


@pytest.mark.parametrize(
    ("workers", "expected"), [(4, ["pa_dbhealth.E007"]), (3, ["pa_dbhealth.W008"]), (2, [])]
)
def test_dbcheck_budget_against_the_role_cap(
    pg: str, pg_admin: Any, settings: Any, workers: int, expected: list[str]
) -> None:
    settings.PA_DBHEALTH = {"WORKERS": workers}
    found = audit_ids(pg)
    assert [i for i in found if i in ("pa_dbhealth.E007", "pa_dbhealth.W008")] == expected
    if workers == 4:
        out, _, _ = run_command("dbcheck", "--database", pg)
        assert "may hold 3 connections, but the site can open 4 at once" in out
        assert "PostgreSQL" in out.splitlines()[0]
        assert "'too many connections for role'" in out
        assert_no_mysql_words(out)
    assert pg_wait_for_pids(pg_admin, []) == []  # the audit closed what it opened


def test_dbcheck_without_idle_in_transaction_timeout(pg: str, pg_admin: Any) -> None:
    pg_admin.execute("ALTER ROLE app SET idle_in_transaction_session_timeout = 0")
    try:
        assert "pa_dbhealth.I020" in audit_ids(pg)
    finally:
        pg_admin.execute("ALTER ROLE app RESET idle_in_transaction_session_timeout")


def test_dbcheck_when_the_role_cap_is_full(pg: str, pg_raw: Raw) -> None:
    pg_raw(3)
    out, _, _ = run_command("dbcheck", "--database", pg, "--format", "json")
    (finding,) = [f for f in json.loads(out)["databases"][pg]["findings"] if f["level"] == "error"]
    assert finding["id"] == "pa_dbhealth.E018"
    assert 'too many connections for role "app"' in finding["message"]
    assert "dbconnections" in finding["hint"]  # how to find and free the role's connections


# --- the health view and dbconnections -----------------------------------------------------


def health_of(client: Client, alias: str) -> tuple[int, dict[str, Any]]:
    response = client.get(f"/health/{alias}/", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    return response.status_code, response.json()


@pytest.mark.parametrize("held", [0, 1])
def test_health_view_counts_equal_reality(
    pg: str, pg_raw: Raw, pg_admin: Any, client: Client, settings: Any, held: int
) -> None:
    settings.PA_DBHEALTH = {"HEALTH_TOKEN": TOKEN}
    raws = pg_raw(held)
    status, body = health_of(client, pg)
    db = body["databases"][pg]
    assert status == HTTPStatus.OK
    assert db["vendor"] == "postgresql"
    assert db["connections"] == {
        "total": held + 1,  # the probe's own connection is one of them
        "active": 1,
        "sleeping": held,
        "limit": 3,
        "headroom": 2 - held,
        "longest_idle_seconds": db["connections"]["longest_idle_seconds"],
    }
    assert db["wait_timeout"] == 300
    assert body["status"] == db["status"] == ("ok" if held == 0 else "warning")
    assert connections[pg].connection is None  # it closed the connection it opened
    pids = sorted(r.info.backend_pid for r in raws)
    assert pg_wait_for_pids(pg_admin, pids) == pids


def test_health_view_when_the_role_cap_is_full(
    pg: str, pg_raw: Raw, client: Client, settings: Any
) -> None:
    settings.PA_DBHEALTH = {"HEALTH_TOKEN": TOKEN}
    pg_raw(3)
    status, body = health_of(client, pg)
    assert status == HTTPStatus.SERVICE_UNAVAILABLE
    db = body["databases"][pg]
    assert db["error"] == "connection cap reached"
    assert 'too many connections for role "app"' in db["detail"]


def test_health_probe_reopens_a_connection_the_idle_timeout_dropped(pg: str, pg_admin: Any) -> None:
    with connections[pg].cursor() as cursor:
        cursor.execute("SET idle_session_timeout = '1s'")
    dropped = backend_pid(pg)
    time.sleep(1.3)
    result = health.probe(pg)
    assert result.status is health.Status.OK, result.detail
    assert result.snapshot is not None and result.snapshot.total == 1
    assert dropped not in [c.id for c in result.snapshot.connections]
    assert connections[pg].connection is None
    assert pg_wait_for_pids(pg_admin, []) == []


def test_dbconnections_kill_idle_kills_exactly_the_idle_connections(
    pg: str, pg_raw: Raw, pg_admin: Any
) -> None:
    (idle,) = pg_raw(1)
    (busy,) = pg_raw(1, autocommit=False)
    busy.execute("SELECT 1")  # idle in transaction: in use, not idle
    out, err, code = run_command(
        "dbconnections", "--database", pg, "--format", "json", "--kill-idle", "0"
    )
    assert code == 0, err
    result = json.loads(out)["databases"][pg]
    assert (result["vendor"], result["limit"], result["total"]) == ("postgresql", 3, 3)
    assert result["killed"] == [idle.info.backend_pid]
    # The command's own connection is closed too; the one in a transaction lives on.
    assert pg_wait_for_pids(pg_admin, [busy.info.backend_pid]) == [busy.info.backend_pid]
    assert busy.execute("SELECT 2").fetchone() == (2,)
    assert pg_admin.execute("SELECT 1").fetchone() == (1,)
