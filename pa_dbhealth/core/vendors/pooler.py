"""Whether something stands between the app and the server: where the server itself
listens, and what a PgBouncer admin console says about its pools."""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from typing import Any

from pa_dbhealth.core.vendors.types import query

# The server's own port and name, as the server sees itself (NULL over a Unix socket).
SERVER_SQL = {
    "mysql": "SELECT @@port, @@hostname",
    "postgresql": "SELECT inet_server_port(), host(inet_server_addr())",
}


@dataclass(frozen=True)
class ServerPlace:
    """Where the server listens, in its own words (None: it does not say)."""

    port: int | None
    host: str | None


def server_place(connection: Any, vendor: str) -> ServerPlace:
    """The port and host the server itself listens on, asked through ``connection``."""
    ((port, host),) = query(connection, SERVER_SQL[vendor])
    return ServerPlace(None if port is None else int(port), None if host is None else str(host))


@dataclass(frozen=True)
class PgBouncerFacts:
    """What PgBouncer's admin console (the ``pgbouncer`` database) says."""

    version: str  # "1.18.0"
    pool_mode: str  # "session", "transaction" or "statement"
    default_pool_size: int
    max_client_conn: int
    max_prepared_statements: int  # 0 (or absent before 1.21): protocol-level ones unsupported

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def pgbouncer_facts(console: Any) -> PgBouncerFacts:
    """Ask PgBouncer's admin console (a connection to its ``pgbouncer`` database, in
    autocommit mode, by a user in its ``admin_users`` or ``stats_users``). The console
    speaks the simple protocol only: no parameters."""
    ((version_line, *_),) = query(console, "SHOW VERSION")
    config = {str(row[0]): str(row[1]) for row in query(console, "SHOW CONFIG")}
    version = str(version_line).split()[-1] if version_line else ""

    def number(key: str) -> int:
        value = config.get(key, "0")
        return int(value) if value.isdigit() else 0

    return PgBouncerFacts(
        version=version,
        pool_mode=config.get("pool_mode", ""),
        default_pool_size=number("default_pool_size"),
        max_client_conn=number("max_client_conn"),
        max_prepared_statements=number("max_prepared_statements"),
    )


def prepares_statements(connection: Any) -> bool:
    """Whether the driver prepares named statements on the server by itself: psycopg 3
    does after ``prepare_threshold`` runs of a query (5 by default; Django sets None),
    except through a client-side-binding cursor."""
    threshold = getattr(connection, "prepare_threshold", None)
    if threshold is None or not type(connection).__module__.startswith("psycopg"):
        return False
    factory = getattr(connection, "cursor_factory", None)
    return not (isinstance(factory, type) and "ClientCursor" in factory.__name__)


def ask_pgbouncer(database: Any, address: dict[str, Any], timeout: float) -> PgBouncerFacts | None:
    """PgBouncer's admin console at ``address`` (host, port, user, password), through the
    driver module ``database`` (psycopg or psycopg2), or None when nothing there answers as
    a PgBouncer console to this user (it answers users in admin_users or stats_users)."""
    keep = {k: address[k] for k in ("host", "port", "user", "password") if address.get(k)}
    try:
        console = database.connect(dbname="pgbouncer", connect_timeout=max(1, int(timeout)), **keep)
    except database.Error:
        return None
    try:
        console.autocommit = True
        return pgbouncer_facts(console)
    except (database.Error, ValueError):
        return None
    finally:
        with contextlib.suppress(database.Error):
            console.close()
