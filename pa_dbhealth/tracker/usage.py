"""What the tracker keeps on a connection wrapper about its use: when its last query ended,
and which driver cursors it made (one still open means a result not read to its end)."""

from __future__ import annotations

import contextlib
import time
import weakref
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper

_USED = "_pa_dbhealth_used"  # time.monotonic() of the end of the wrapper's last query
_CURSORS = "_pa_dbhealth_cursors"  # the driver cursors the wrapper made (a WeakSet)


def note_use(connection: BaseDatabaseWrapper, now: float | None = None) -> None:
    """The connection was used (opened, or a query ended) at ``now`` (``time.monotonic()``)."""
    setattr(connection, _USED, time.monotonic() if now is None else now)


def last_used(connection: BaseDatabaseWrapper) -> float | None:
    """``time.monotonic()`` of the end of the connection's last query (or of its opening)."""
    value = getattr(connection, _USED, None)
    return value if isinstance(value, float) else None


def count_cursors(connection: BaseDatabaseWrapper) -> None:
    """Keep a weak set of the driver cursors ``connection`` makes, to tell an iterator
    between two chunks (a cursor still open) from an idle connection."""
    made: weakref.WeakSet[Any] = weakref.WeakSet()
    create_cursor = connection.create_cursor

    def counted(name: Any = None) -> Any:
        cursor = create_cursor(name)
        with contextlib.suppress(TypeError):  # a cursor type without weak references
            made.add(cursor)
        return cursor

    setattr(connection, _CURSORS, made)
    connection.create_cursor = counted  # type: ignore[method-assign]


def _cursor_open(cursor: Any) -> bool:
    closed = getattr(cursor, "closed", None)  # psycopg
    if isinstance(closed, bool):
        return not closed
    return getattr(cursor, "connection", None) is not None  # mysqlclient, PyMySQL


def in_use(connection: BaseDatabaseWrapper) -> bool:
    """Whether a cursor is still open on the connection (a result not read to its end, such
    as ``QuerySet.iterator()`` between chunks): then it must not be closed."""
    made = getattr(connection, _CURSORS, None)
    return made is not None and any(_cursor_open(cursor) for cursor in list(made))
