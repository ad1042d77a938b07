"""Server introspection: the only place in pa_dbhealth that writes SQL.

One function per question, on a DB-API connection (mysqlclient, PyMySQL, psycopg), each
one or two round trips, returning the dataclasses in ``types``. The vendor is told by the
driver the connection comes from. The probes run on the connection they are given and do
not close it; a face translates the driver's errors as it likes.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import ModuleType
from typing import Any

from pa_dbhealth.core.vendors import mysql, postgresql
from pa_dbhealth.core.vendors.types import (
    AccountConnection,
    AccountSnapshot,
    KillResult,
    ServerFacts,
)

__all__ = [
    "AccountConnection",
    "AccountSnapshot",
    "KillResult",
    "ServerFacts",
    "account_snapshot",
    "driver_connection",
    "is_applicable",
    "kill_idle",
    "not_applicable",
    "server_facts",
    "vendor_of",
]

# The driver's top-level module -> the vendor (Django's ``connection.vendor`` names).
DRIVERS = {
    "MySQLdb": "mysql",
    "pymysql": "mysql",
    "psycopg": "postgresql",
    "psycopg2": "postgresql",
    "sqlite3": "sqlite",
}
_MODULES: dict[str, ModuleType] = {"mysql": mysql, "postgresql": postgresql}
_NOTES = {
    "sqlite": "SQLite is a file, not a server: it has no connection cap or idle timeout, "
    "so pa_dbhealth has nothing to check here.",
}


def driver_connection(connection: Any) -> Any:
    """The driver's own connection behind a pool's proxy (SQLAlchemy's, which
    django-db-connection-pool hands out too), or ``connection`` itself."""
    inner = getattr(connection, "dbapi_connection", None)
    return connection if inner is None else inner


def vendor_of(connection: Any) -> str:
    """``"mysql"``, ``"postgresql"``, ... for a DB-API connection, from its driver."""
    root = type(driver_connection(connection)).__module__.partition(".")[0]
    return DRIVERS.get(root, root)


def is_applicable(vendor: str) -> bool:
    """Whether the vendor has a server with caps and timeouts pa_dbhealth understands."""
    return vendor in _MODULES


def not_applicable(vendor: str, display_name: str) -> ServerFacts:
    """The facts of a backend pa_dbhealth cannot ask: every figure None, a note why."""
    note = _NOTES.get(vendor, f"pa_dbhealth does not know how to ask a {display_name} server.")
    return ServerFacts(vendor=vendor, flavour=display_name, applicable=False, note=note)


def _module(connection: Any) -> ModuleType:
    vendor = vendor_of(connection)
    try:
        return _MODULES[vendor]
    except KeyError:
        raise ValueError(f"pa_dbhealth cannot ask a {vendor!r} server") from None


def server_facts(connection: Any) -> ServerFacts:
    """The server's timeouts and limits as seen by this connection's account."""
    facts: ServerFacts = _module(connection).server_facts(connection)
    return facts


def account_snapshot(connection: Any, *, fresh_cap: bool = False) -> AccountSnapshot:
    """The account's connections now (this one included), with its cap and idle timeout.
    The cap is the one the connection logged in with, unless ``fresh_cap`` (one more
    query on MySQL): a cap changed on the server since shows only then."""
    module = _module(connection)
    snapshot: AccountSnapshot = module.account_snapshot(connection, fresh_cap=fresh_cap)
    return snapshot


def kill_idle(
    connection: Any,
    ids: Iterable[int],
    *,
    min_idle: float = 0,
    include_transactions: bool = False,
    dry_run: bool = False,
) -> KillResult:
    """Kill those of ``ids`` that are, when each one's turn comes, still the account's own,
    still idle for ``min_idle`` seconds or more, not this connection, and outside a
    transaction (unless ``include_transactions``; a MySQL account without the PROCESS
    privilege cannot see transactions, so its connections are then spared as unknown).
    Connections that ended meanwhile are skipped. Returns what was killed and spared;
    ``dry_run``: the same checks, and ``killed`` lists what would be."""
    module = _module(connection)
    result = KillResult()
    for conn_id in [int(i) for i in ids]:
        spared: str | None = module.kill_one(
            connection,
            conn_id,
            min_idle=min_idle,
            include_transactions=include_transactions,
            dry_run=dry_run,
        )
        if spared is None:
            result.killed.append(conn_id)
        else:
            result.skip(conn_id, spared)
    return result
