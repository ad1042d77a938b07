"""MySQL and MariaDB: timeouts and caps from system variables, connections from PROCESSLIST.

An account without the PROCESS privilege (as on PythonAnywhere) sees only its own rows in
``information_schema.PROCESSLIST``; the queries also filter on the login user, so an
account that has the privilege still gets only its own. The login user is ``USER()``
without its last ``@host`` part: a user name may itself contain ``@``.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from pa_dbhealth.core.errors import classify
from pa_dbhealth.core.vendors.types import (
    AccountConnection,
    AccountSnapshot,
    ServerFacts,
    query,
)

LOGIN_USER = "LEFT(USER(), CHAR_LENGTH(USER()) - CHAR_LENGTH(SUBSTRING_INDEX(USER(), '@', -1)) - 1)"

FACTS_SQL = """
SELECT VERSION(), @@session.wait_timeout, @@session.interactive_timeout,
       @@session.net_read_timeout, @@global.max_connections,
       @@session.max_user_connections, @@global.max_user_connections,
       CURRENT_USER(), CONNECTION_ID()
"""

# One row per connection of the account, and one row with NULLs when the server lists none
# (an account that cannot see its own rows): the limits come with every row either way.
SNAPSHOT_SQL = f"""
SELECT p.ID, p.USER, p.HOST, p.DB, p.COMMAND, p.STATE, p.TIME, p.ID = CONNECTION_ID(),
       v.session_cap, v.global_cap, v.wait
FROM (SELECT @@session.max_user_connections AS session_cap,
             @@global.max_user_connections AS global_cap,
             @@session.wait_timeout AS wait, {LOGIN_USER} AS login) v
LEFT JOIN information_schema.PROCESSLIST p ON p.USER = v.login
ORDER BY p.ID
"""  # noqa: S608 (constant fragments, no input)

# What a connection is doing right before it is killed, and whether it holds a transaction
# (INNODB_TRX needs the PROCESS privilege: without it the second query answers).
RECHECK_SQL = f"""
SELECT p.COMMAND, p.TIME,
       (SELECT COUNT(*) FROM information_schema.INNODB_TRX t WHERE t.trx_mysql_thread_id = p.ID)
FROM information_schema.PROCESSLIST p
WHERE p.ID = %s AND p.USER = {LOGIN_USER} AND p.ID <> CONNECTION_ID()
"""  # noqa: S608 (constant fragments, no input)
RECHECK_NO_TRX_SQL = f"""
SELECT p.COMMAND, p.TIME, NULL
FROM information_schema.PROCESSLIST p
WHERE p.ID = %s AND p.USER = {LOGIN_USER} AND p.ID <> CONNECTION_ID()
"""  # noqa: S608 (constant fragments, no input)

KILL_SQL = "KILL CONNECTION %s"

# The account's cap as it is now: @@session.max_user_connections keeps the one of the
# login, and a parked connection may be hours old. Any account may ask about itself; the
# answer holds its password hash too, of which nothing is kept or said.
ACCOUNT_SQL = "SHOW CREATE USER CURRENT_USER()"
_ACCOUNT_CAP = re.compile(r"\bMAX_USER_CONNECTIONS\s+(\d+)", re.IGNORECASE)

logger = logging.getLogger("pa_dbhealth.vendors")

IDLE_COMMAND = "Sleep"
UNKNOWN_THREAD = 1094  # the connection ended on its own before its KILL
NO_PRIVILEGE = (1227, 1142)  # PROCESS needed for INNODB_TRX


def _limit(session_value: int | None, global_value: int | None) -> int | None:
    # The session value is the account's own MAX_USER_CONNECTIONS when it has one,
    # else the server-wide max_user_connections; 0 means "no cap".
    for value in (session_value, global_value):
        if value:
            return int(value)
    return None


def server_facts(connection: Any) -> ServerFacts:
    ((version, wait, interactive, net_read, max_conn, session_cap, global_cap, user, conn_id),) = (
        query(connection, FACTS_SQL)
    )
    return ServerFacts(
        vendor="mysql",
        flavour="MariaDB" if "mariadb" in str(version).lower() else "MySQL",
        version=str(version),
        user=str(user),
        connection_id=int(conn_id),
        wait_timeout=int(wait),
        interactive_timeout=int(interactive),
        net_read_timeout=int(net_read),
        max_connections=int(max_conn),
        account_limit=_limit(session_cap, global_cap),
    )


def account_snapshot(connection: Any, *, fresh_cap: bool = False) -> AccountSnapshot:
    rows = query(connection, SNAPSHOT_SQL)
    first = rows[0]
    session_cap = _cap_now(connection) if fresh_cap else None
    return AccountSnapshot(
        account_limit=_limit(first[8] if session_cap is None else session_cap, first[9]),
        wait_timeout=int(first[10]),
        connections=[
            AccountConnection.from_row(row, idle_command=IDLE_COMMAND)
            for row in rows
            if row[0] is not None
        ],
    )


def _cap_now(connection: Any) -> int | None:
    """The account's own MAX_USER_CONNECTIONS as the server has it now (0: none, the
    server-wide one applies); None when the server would not say."""
    try:
        ((statement, *_),) = query(connection, ACCOUNT_SQL)
    except Exception as exc:
        logger.debug("could not read the account's cap: error %s", classify(exc).code)
        return None
    found = _ACCOUNT_CAP.search(str(statement))
    return int(found.group(1)) if found else 0


def _recheck(connection: Any, conn_id: int) -> tuple[str, int, bool | None] | None:
    """``(command, seconds, in a transaction)`` of one of the account's other connections,
    or None when it is gone or not the account's; the transaction is None when unknown."""
    try:
        rows = query(connection, RECHECK_SQL, [conn_id])
    except Exception as exc:
        if classify(exc).code not in NO_PRIVILEGE:
            raise
        rows = query(connection, RECHECK_NO_TRX_SQL, [conn_id])
    if not rows:
        return None
    command, seconds, transactions = rows[0]
    seconds = int(seconds or 0)
    if transactions is None or (not transactions and seconds < 1):
        # InnoDB lists transactions from a cache refreshed at most every 0.1 s: one begun in
        # the last instant may not show yet. Idle for a whole second, it shows.
        return str(command), seconds, None
    return str(command), seconds, bool(transactions)


def kill_one(
    connection: Any,
    conn_id: int,
    *,
    min_idle: float,
    include_transactions: bool,
    dry_run: bool,
) -> str | None:
    """Kill the account's connection ``conn_id`` if it is still idle enough (see
    ``vendors.kill_idle``): None when it is killed (or, ``dry_run``, would be), else why it
    is spared."""
    now = _recheck(connection, conn_id)
    if now is None:
        return "gone"
    command, seconds, in_transaction = now
    if command != IDLE_COMMAND or seconds < min_idle:
        return "busy"
    if not include_transactions and in_transaction is not False:
        return "in transaction" if in_transaction else "transaction unknown"
    if dry_run:
        return None
    try:
        query(connection, KILL_SQL, [conn_id], fetch=False)
    except Exception as exc:
        if classify(exc).code != UNKNOWN_THREAD:
            raise
        return "gone"
    return None
