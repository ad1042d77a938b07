"""Is this idle connection still alive, and is it clean? Answered without a round trip.

When a server closes a connection (its idle timeout, ``KILL``, a restart, a crash), the
kernel makes the client's socket readable at once: a zero-timeout ``poll`` on it answers in
about a microsecond. An idle connection has nothing to read, so a readable socket means it
is dead, or holds data nobody asked for (an unread result): either way it must not be used
again. The check cannot see a link that died silently (a NAT that drops state and sends
nothing), nor through a proxy that keeps the client's socket open when the server goes: the
idle-time rule covers the first, ``CONN_HEALTH_CHECKS``/``pool_pre_ping`` the second.

Whether a transaction is open is read from what the driver already holds: the status flags
of the server's last OK packet (PyMySQL ``server_status``; mysqlclient through its native
handle on MariaDB Connector/C) or libpq's transaction status (psycopg). None means the
driver does not say.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import select
from collections.abc import Callable
from typing import Any

SERVER_STATUS_IN_TRANS = 0x0001
SERVER_STATUS_AUTOCOMMIT = 0x0002
# enum mariadb_value in MariaDB Connector/C's mysql.h (stable since 3.0: values are appended)
MARIADB_CONNECTION_SERVER_STATUS = 30
_NATIVE_CAPSULE = b"_mysql.connection.native_connection"


_DRIVERS: dict[type, str] = {}


def _driver(cls: type) -> str:
    """Which driver a connection class belongs to, asked once per class: the checks below
    run before every reuse, so they read known attributes instead of probing for them."""
    found = _DRIVERS.get(cls)
    if found is None:
        root = cls.__module__.partition(".")[0]
        if hasattr(cls, "dbapi_connection"):
            found = "proxy"  # SQLAlchemy's pool proxy (also django-db-connection-pool's)
        elif root in ("MySQLdb", "pymysql", "psycopg", "psycopg2"):
            found = root
        else:
            found = "unknown"
        _DRIVERS[cls] = found
    return found


def _unwrapped(connection: Any) -> tuple[str, Any]:
    driver = _driver(type(connection))
    if driver == "proxy":
        connection = connection.dbapi_connection
        driver = _driver(type(connection)) if connection is not None else "unknown"
    return driver, connection


def socket_fd(connection: Any) -> int | None:
    """The file descriptor of a DB-API connection's socket; None when it has none or is
    closed (mysqlclient, PyMySQL and psycopg 2/3 are known)."""
    driver, connection = _unwrapped(connection)
    try:
        if driver == "pymysql":
            sock = connection._sock
            return None if sock is None else int(sock.fileno())
        if driver == "unknown":
            return None
        fd = int(connection.fileno())
    except Exception:  # a closed connection raises
        return None
    return fd if fd >= 0 else None


def _readable(fd: int) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLPRI)
    return bool(poller.poll(0))


def is_dead(connection: Any) -> bool | None:
    """True when an idle connection must not be used again (the server closed it, or it
    holds unread data); False when its socket is quiet; None when there is no socket to ask
    (SQLite, an unknown driver)."""
    driver, connection = _unwrapped(connection)
    if driver == "unknown":
        return None
    if driver == "MySQLdb" and not connection.open:
        return True
    if driver in ("psycopg", "psycopg2") and connection.closed:
        return True
    fd = socket_fd(connection)
    if fd is None:
        return True  # a known driver without a socket: closed
    try:
        return _readable(fd)
    except (OSError, ValueError):
        return True


def in_transaction(connection: Any) -> bool | None:
    """Whether the server holds a transaction open on this connection (raw SQL included),
    as of the end of its last statement; None when the driver does not say."""
    driver, connection = _unwrapped(connection)
    if driver in ("psycopg", "psycopg2"):  # IDLE is 0 (ACTIVE, INTRANS, INERROR, UNKNOWN)
        return int(connection.info.transaction_status) != 0
    if driver == "pymysql":
        return bool(connection.server_status & SERVER_STATUS_IN_TRANS)
    read = _mysqlclient_status_reader() if driver == "MySQLdb" else None
    flags = None if read is None else read(connection)
    return None if flags is None else bool(flags & SERVER_STATUS_IN_TRANS)


@functools.cache
def _mysqlclient_status_reader() -> Callable[[Any], int | None] | None:
    """mysqlclient keeps the server's status flags in its MYSQL handle but shows only the
    autocommit bit; MariaDB Connector/C's ``mariadb_get_info`` reads them all. None when
    mysqlclient is built on another client library."""
    try:
        from MySQLdb import _mysql

        library = ctypes.CDLL(_mysql.__file__)
        get_info = library.mariadb_get_info
    except (ImportError, OSError, AttributeError):
        return None
    get_info.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
    get_info.restype = ctypes.c_char
    pointer = ctypes.pythonapi.PyCapsule_GetPointer
    pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    pointer.restype = ctypes.c_void_p

    def read(connection: Any) -> int | None:
        with contextlib.suppress(Exception):  # closed: no handle; then the driver cannot say
            handle = pointer(connection._get_native_connection(), _NATIVE_CAPSULE)
            flags = ctypes.c_uint(0)
            if (
                handle
                and get_info(handle, MARIADB_CONNECTION_SERVER_STATUS, ctypes.byref(flags)) == b"\0"
            ):
                value = flags.value
                # The same flags mysqlclient reads for get_autocommit(): if the autocommit
                # bit disagrees, this is not the status word, and the driver cannot say.
                if value < 0x10000 and bool(value & SERVER_STATUS_AUTOCOMMIT) == bool(
                    connection.get_autocommit()
                ):
                    return value
        return None

    return read


def close_quietly(connection: Any) -> None:
    """Close a connection that may be dead already: whatever the driver says is ignored, the
    connection is closed all the same."""
    with contextlib.suppress(Exception):
        connection.close()
