"""PostgreSQL: limits from settings and the role, connections from pg_stat_activity."""

from __future__ import annotations

from typing import Any

from pa_dbhealth.core.vendors.types import (
    AccountConnection,
    AccountSnapshot,
    ServerFacts,
    query,
)

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

SECONDS = "floor(EXTRACT(EPOCH FROM clock_timestamp() - COALESCE(a.state_change, a.backend_start)))"

# One row per connection of the role, and one row with NULLs when it sees none.
SNAPSHOT_SQL = f"""
SELECT a.pid, a.usename, COALESCE(host(a.client_addr), 'local'), a.datname,
       COALESCE(a.state, ''), COALESCE(a.wait_event, ''), {SECONDS}, a.pid = pg_backend_pid(),
       v.connlimit, v.idle_ms
FROM (SELECT (SELECT rolconnlimit FROM pg_roles WHERE rolname = session_user) AS connlimit,
             (SELECT setting::bigint FROM pg_settings WHERE name = 'idle_session_timeout')
               AS idle_ms) v
LEFT JOIN pg_stat_activity a
  ON a.usename = session_user AND COALESCE(a.backend_type, 'client backend') = 'client backend'
ORDER BY a.pid
"""  # noqa: S608 (constant fragments, no input)

RECHECK_SQL = f"""
SELECT COALESCE(a.state, ''), {SECONDS} FROM pg_stat_activity a
WHERE a.pid = %s AND a.usename = session_user AND a.pid <> pg_backend_pid()
"""  # noqa: S608 (constant fragments, no input)

# Terminated only if it is still in the state that was judged, in the same statement.
KILL_SQL = """
SELECT pg_terminate_backend(a.pid) FROM pg_stat_activity a
WHERE a.pid = %s AND a.usename = session_user AND a.state = %s
"""

IDLE_STATE = "idle"
IDLE_IN_TRANSACTION = ("idle in transaction", "idle in transaction (aborted)")


def _seconds(milliseconds: int | None) -> int | None:
    return None if not milliseconds else max(1, int(milliseconds) // 1000)


def _limit(rolconnlimit: int | None) -> int | None:
    return None if rolconnlimit is None or rolconnlimit < 0 else int(rolconnlimit)


def server_facts(connection: Any) -> ServerFacts:
    ((version, max_conn, idle_ms, idle_tx_ms, connlimit, user, pid),) = query(connection, FACTS_SQL)
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


def account_snapshot(connection: Any, *, fresh_cap: bool = False) -> AccountSnapshot:
    # The role's connection limit is read from the catalog: always the one of now.
    rows = query(connection, SNAPSHOT_SQL)
    first = rows[0]
    return AccountSnapshot(
        account_limit=_limit(first[8]),
        wait_timeout=_seconds(first[9]),
        connections=[
            AccountConnection.from_row(
                row, idle_command=IDLE_STATE, in_transaction=row[4] in IDLE_IN_TRANSACTION
            )
            for row in rows
            if row[0] is not None
        ],
    )


def kill_one(
    connection: Any,
    pid: int,
    *,
    min_idle: float,
    include_transactions: bool,
    dry_run: bool,
) -> str | None:
    """Kill the account's connection ``pid`` if it is still idle enough (see
    ``vendors.kill_idle``): None when it is killed (or, ``dry_run``, would be), else why it
    is spared."""
    rows = query(connection, RECHECK_SQL, [pid])
    if not rows:
        return "gone"
    state, seconds = str(rows[0][0]), int(rows[0][1] or 0)
    in_transaction = state in IDLE_IN_TRANSACTION
    idle = state == IDLE_STATE or (in_transaction and include_transactions)
    if in_transaction and not include_transactions:
        return "in transaction"
    if not idle or seconds < min_idle:
        return "busy"
    if dry_run:
        return None
    terminated = query(connection, KILL_SQL, [pid, state])
    if terminated and terminated[0][0]:
        return None
    return "busy" if terminated else "gone"
