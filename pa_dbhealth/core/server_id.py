"""Which server and account a connection is (the key of its line and of its registry
entries, in every face), and the server's id for a DB-API connection, read from the driver
without a query: what the registry of holders names a connection by, and what the server's
list shows."""

from __future__ import annotations

from typing import Any

from pa_dbhealth.core.registry import server_key


def account_key(
    vendor: str, host: Any, port: Any, user: Any, unix_socket: Any = None
) -> tuple[str, str]:
    """``(server, account)`` as every face keys them: a Unix socket's path when the
    connection goes through one (a ``unix_socket`` option, or a host that is a path), else
    ``host:port`` (:func:`pa_dbhealth.core.registry.server_key`), and the login user."""
    return server_key(vendor, unix_socket or host, port), str(user or "")


def server_id(raw: Any) -> int | None:
    """MySQL's thread id (mysqlclient, PyMySQL: ``thread_id()``), PostgreSQL's backend pid
    (psycopg: ``info.backend_pid``), else None (SQLite, a driver that cannot tell)."""
    thread_id = getattr(raw, "thread_id", None)
    if thread_id is None:
        pid = getattr(getattr(raw, "info", None), "backend_pid", None)
        return pid if isinstance(pid, int) else None
    try:
        return int(thread_id())
    except Exception:  # a closed connection, a driver that cannot tell: the id is a nicety
        return None
