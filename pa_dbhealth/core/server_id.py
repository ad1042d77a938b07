"""The server's id for a DB-API connection, read from the driver without a query: what the
registry of holders names a connection by, and what the server's list shows."""

from __future__ import annotations

from typing import Any


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
