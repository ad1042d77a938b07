"""PostgreSQL: limits from settings and the role, connections from pg_stat_activity."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.backends.base.base import BaseDatabaseWrapper

from pa_dbhealth.vendors.types import AccountConnection, AccountSnapshot, ServerFacts

# pg_settings gives timeouts in milliseconds; 0 means "off". idle_session_timeout
# exists from PostgreSQL 14 on: the sub-select yields NULL before that. The account is the
# role that logged in (session_user): the one the cap counts, even after SET ROLE (Django's
# OPTIONS["assume_role"]). Then the server may hide the state of the account's connections
# (NULL backend_type, state) from the assumed role: they still count, as not idle.
# Seconds in the state are whole seconds rounded down (as MySQL's TIME), on the clock, not
# now(), which inside a transaction is the transaction's start.
FACTS_SQL = """
SELECT current_setting('server_version'), current_setting('max_connections')::int,
       (SELECT setting::bigint FROM pg_settings WHERE name = 'idle_session_timeout'),
       (SELECT setting::bigint FROM pg_settings
         WHERE name = 'idle_in_transaction_session_timeout'),
       (SELECT rolconnlimit FROM pg_roles WHERE rolname = session_user),
       session_user, pg_backend_pid()
"""

SNAPSHOT_SQL = """
SELECT a.pid, a.usename, COALESCE(host(a.client_addr), 'local'), a.datname,
       COALESCE(a.state, ''), COALESCE(a.wait_event, ''),
       floor(EXTRACT(EPOCH FROM clock_timestamp() - COALESCE(a.state_change, a.backend_start))),
       a.pid = pg_backend_pid(),
       (SELECT rolconnlimit FROM pg_roles WHERE rolname = session_user),
       (SELECT setting::bigint FROM pg_settings WHERE name = 'idle_session_timeout')
FROM pg_stat_activity a
WHERE a.usename = session_user AND COALESCE(a.backend_type, 'client backend') = 'client backend'
ORDER BY a.pid
"""

KILL_SQL = "SELECT pg_terminate_backend(%s)"


def _seconds(milliseconds: int | None) -> int | None:
    return None if not milliseconds else max(1, int(milliseconds) // 1000)


def _limit(rolconnlimit: int | None) -> int | None:
    return None if rolconnlimit is None or rolconnlimit < 0 else int(rolconnlimit)


def server_facts(connection: BaseDatabaseWrapper) -> ServerFacts:
    with connection.cursor() as cursor:
        cursor.execute(FACTS_SQL)
        version, max_conn, idle_ms, idle_tx_ms, connlimit, user, pid = cursor.fetchone()
    return ServerFacts(
        vendor="postgresql",
        flavour="PostgreSQL",
        version=str(version),
        user=str(user),
        connection_id=int(pid),
        wait_timeout=_seconds(idle_ms),
        idle_in_transaction_timeout=_seconds(idle_tx_ms),
        max_connections=int(max_conn),
        account_limit=_limit(connlimit),
    )


def account_snapshot(connection: BaseDatabaseWrapper) -> AccountSnapshot:
    with connection.cursor() as cursor:
        cursor.execute(SNAPSHOT_SQL)
        rows = cursor.fetchall()
    connections = [AccountConnection.from_row(row, idle_command="idle") for row in rows]
    first = rows[0]
    return AccountSnapshot(
        account_limit=_limit(first[8]), wait_timeout=_seconds(first[9]), connections=connections
    )


def kill_connections(connection: BaseDatabaseWrapper, ids: Iterable[int]) -> list[int]:
    killed = []
    with connection.cursor() as cursor:
        for pid in ids:
            cursor.execute(KILL_SQL, [int(pid)])
            if cursor.fetchone()[0]:
                killed.append(int(pid))
    return killed
