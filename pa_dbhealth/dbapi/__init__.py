"""Safe connections for scripts that use a MySQL driver directly (mysqlclient, PyMySQL),
without Django, Flask or SQLAlchemy.

    from pa_dbhealth import dbapi

    with dbapi.connect("mysql://app:secret@app.mysql.pythonanywhere-services.com/app$db") as conn:
        conn.autocommit(True)
        with conn.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM orders WHERE paid = %s", [True])
            print(cursor.fetchone())

``connect(url)`` or ``connect(host=..., user=..., ...)`` with the driver's own keyword
arguments. At a full connection cap the connect waits in the account's line for
``connect_retry`` seconds, then raises the driver's error. Before each statement a
connection the server closed, or one idle past the server's timeout, is replaced, but only
when no transaction is open; a transaction lost to the server raises
:class:`TransactionLost`; a failed statement is never run again. See docs/raw-scripts.md.
"""

from __future__ import annotations

from typing import Any

from pa_dbhealth.core.options import Options
from pa_dbhealth.dbapi.connection import Connection, Cursor, TransactionLost
from pa_dbhealth.dbapi.opening import target

__all__ = ["Connection", "Cursor", "TransactionLost", "connect"]


def connect(
    url: str | None = None,
    *,
    driver: str | None = None,
    connect_retry: float = Options.CONNECT_RETRY,
    timeout_margin: float = Options.TIMEOUT_MARGIN,
    **params: Any,
) -> Connection:
    """A :class:`Connection` to the URL's server (``mysql://``, ``mysql+pymysql://``) or to
    the one the driver's keyword arguments name. ``driver``: ``"mysqlclient"`` or
    ``"pymysql"`` (default: the URL's, else the first installed). ``connect_retry``: seconds
    to wait at a full cap. ``timeout_margin``: seconds before the server's idle timeout at
    which a connection counts as stale."""
    return Connection(target(url, driver, params), connect_retry, timeout_margin)
