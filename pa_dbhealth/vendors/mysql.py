"""MySQL and MariaDB: timeouts and caps from system variables, connections from PROCESSLIST.

An account without the PROCESS privilege (as on PythonAnywhere) sees only its own rows in
``information_schema.PROCESSLIST``; the query also filters on the login user so an
account that has the privilege still gets only its own.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.backends.base.base import BaseDatabaseWrapper

from pa_dbhealth.vendors.types import AccountConnection, AccountSnapshot, ServerFacts

FACTS_SQL = """
SELECT VERSION(), @@session.wait_timeout, @@session.interactive_timeout,
       @@session.net_read_timeout, @@global.max_connections,
       @@session.max_user_connections, @@global.max_user_connections,
       CURRENT_USER(), CONNECTION_ID()
"""

SNAPSHOT_SQL = """
SELECT p.ID, p.USER, p.HOST, p.DB, p.COMMAND, p.STATE, p.TIME, p.ID = CONNECTION_ID(),
       @@session.max_user_connections, @@global.max_user_connections, @@session.wait_timeout
FROM information_schema.PROCESSLIST p
WHERE p.USER = SUBSTRING_INDEX(USER(), '@', 1)
ORDER BY p.ID
"""

KILL_SQL = "KILL CONNECTION %s"


def _limit(session_value: int | None, global_value: int | None) -> int | None:
    # The session value is the account's own MAX_USER_CONNECTIONS when it has one,
    # else the server-wide max_user_connections; 0 means "no cap".
    for value in (session_value, global_value):
        if value:
            return int(value)
    return None


def server_facts(connection: BaseDatabaseWrapper) -> ServerFacts:
    with connection.cursor() as cursor:
        cursor.execute(FACTS_SQL)
        row = cursor.fetchone()
    (version, wait, interactive, net_read, max_conn, session_cap, global_cap, user, conn_id) = row
    return ServerFacts(
        vendor="mysql",
        flavour="MariaDB" if connection.mysql_is_mariadb else "MySQL",  # type: ignore[attr-defined]
        version=str(version),
        user=str(user),
        connection_id=int(conn_id),
        wait_timeout=int(wait),
        interactive_timeout=int(interactive),
        net_read_timeout=int(net_read),
        max_connections=int(max_conn),
        account_limit=_limit(session_cap, global_cap),
    )


def account_snapshot(connection: BaseDatabaseWrapper) -> AccountSnapshot:
    with connection.cursor() as cursor:
        cursor.execute(SNAPSHOT_SQL)
        rows = cursor.fetchall()
    connections = [AccountConnection.from_row(row, idle_command="Sleep") for row in rows]
    # The probe's own connection is always listed, so rows is never empty.
    first = rows[0]
    return AccountSnapshot(
        account_limit=_limit(first[8], first[9]),
        wait_timeout=int(first[10]),
        connections=connections,
    )


def kill_connections(connection: BaseDatabaseWrapper, ids: Iterable[int]) -> list[int]:
    killed = []
    with connection.cursor() as cursor:
        for conn_id in ids:
            try:
                cursor.execute(KILL_SQL, [int(conn_id)])
            except connection.Database.OperationalError:  # type: ignore[attr-defined]
                continue  # (1094) Unknown thread id: it ended on its own meanwhile
            killed.append(int(conn_id))
    return killed
