"""Database errors classified once, so every face answers the same error the same way."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any


class Kind(enum.Enum):
    ACCOUNT_CAP = "account_cap"  # 1226 max_user_connections: the per-account cap is full
    HOURLY_QUOTA = "hourly_quota"  # 1226 max_*_per_hour: waiting seconds cannot help
    SERVER_USER_CAP = "server_user_cap"  # 1203: the server-wide max_user_connections
    TOO_MANY = "too_many"  # 1040 (MySQL) / 53300 (PostgreSQL): the server is full
    LOST = "lost"  # 2006, 2013, 4031: the connection is gone
    UNREACHABLE = "unreachable"  # 2002, 2003, 2005: no server answers there
    ACCESS_DENIED = "access_denied"  # 1045
    UNKNOWN_DATABASE = "unknown_database"  # 1049
    OTHER = "other"

    @property
    def is_cap(self) -> bool:
        """A connect refused because connections are used up (a short wait can help)."""
        return self in (Kind.ACCOUNT_CAP, Kind.SERVER_USER_CAP, Kind.TOO_MANY)


_MYSQL_CODES = {
    1203: Kind.SERVER_USER_CAP,
    1040: Kind.TOO_MANY,
    2006: Kind.LOST,
    2013: Kind.LOST,
    4031: Kind.LOST,
    2002: Kind.UNREACHABLE,
    2003: Kind.UNREACHABLE,
    2005: Kind.UNREACHABLE,
    1045: Kind.ACCESS_DENIED,
    1049: Kind.UNKNOWN_DATABASE,
}
_PG_STATES = {
    "53300": Kind.TOO_MANY,  # too_many_connections (for the role's cap: _PG_CONNECT_WORDS)
    "57P01": Kind.LOST,  # admin_shutdown (pg_terminate_backend)
    "57P05": Kind.LOST,  # idle_session_timeout dropped it
    "25P03": Kind.LOST,  # idle_in_transaction_session_timeout dropped it
    "08006": Kind.LOST,
    "08003": Kind.LOST,
    "28P01": Kind.ACCESS_DENIED,
    "28000": Kind.ACCESS_DENIED,
    "3D000": Kind.UNKNOWN_DATABASE,
}
# psycopg's connect errors carry no SQLSTATE: the server's 53300 messages by their words.
_PG_CONNECT_WORDS = (
    ("too many connections for role", Kind.ACCOUNT_CAP),  # the role's CONNECTION LIMIT
    ("too many clients already", Kind.TOO_MANY),  # max_connections
    ("connection slots are reserved", Kind.TOO_MANY),  # all but the superusers' slots
)
# A lost connection in the words people search for: MariaDB's client library says "Server has
# gone away" and "Lost connection to server"; MySQL's, PyMySQL and the host's docs say these.
_SEARCHED_FOR = {2006: "MySQL server has gone away", 2013: "Lost connection to MySQL server"}
_RESOURCE = re.compile(r"'(max_\w+)' resource", re.IGNORECASE)


@dataclass(frozen=True)
class Classified:
    kind: Kind
    code: int | str | None
    message: str
    resource: str | None = None  # for 1226: the exhausted resource, e.g. "max_user_connections"

    @property
    def short(self) -> str:
        """``(1226) User 'app' has exceeded ...``: the code and the driver's message, and for a
        lost connection the words people search for, once."""
        if self.code is None:
            return self.message
        phrase = _SEARCHED_FOR.get(self.code) if isinstance(self.code, int) else None
        if phrase is None or phrase.lower() in self.message.lower():
            return f"({self.code}) {self.message}"
        return f'({self.code}) {self.message} ("{phrase}")'


def _unwrap(exc: BaseException) -> BaseException:
    # SQLAlchemy keeps the driver's error as ``orig``; Django re-raises driver errors as
    # django.db.utils errors with the original as ``__cause__``.
    orig = getattr(exc, "orig", None)
    if isinstance(orig, BaseException):
        return orig
    cause = exc.__cause__
    return cause if cause is not None and getattr(cause, "args", None) else exc


def classify(exc: BaseException) -> Classified:
    """Classify a mysqlclient/PyMySQL/psycopg error, as raised or wrapped by Django or
    SQLAlchemy, by its code, never by guesswork."""
    original = _unwrap(exc)
    args: tuple[object, ...] = tuple(getattr(original, "args", ()))
    sqlstate = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
    mysql_code = len(args) >= 2 and isinstance(args[0], int)  # PyMySQL 1.2 has sqlstate too
    if sqlstate and not mysql_code:
        message = str(original).strip().splitlines()[0] if str(original).strip() else ""
        return Classified(_PG_STATES.get(sqlstate, Kind.OTHER), sqlstate, message)
    if len(args) >= 2 and isinstance(args[0], int):
        code, message = args[0], str(args[1])
        if code == 1226:
            match = _RESOURCE.search(message)
            resource = match.group(1).lower() if match else None
            kind = (
                Kind.ACCOUNT_CAP
                if resource in (None, "max_user_connections")
                else Kind.HOURLY_QUOTA
            )
            return Classified(kind, code, message, resource)
        return Classified(_MYSQL_CODES.get(code, Kind.OTHER), code, message)
    text = str(original).strip()
    for words, kind in _PG_CONNECT_WORDS:
        if words in text.lower():
            return Classified(kind, "53300", text)
    if "too many connections" in text.lower():
        return Classified(Kind.TOO_MANY, None, text)
    if text == "the connection is closed":  # psycopg, using a connection the server dropped
        return Classified(Kind.LOST, None, text)
    if "could not connect" in text.lower() or "connection refused" in text.lower():
        return Classified(Kind.UNREACHABLE, None, text.splitlines()[0])
    return Classified(Kind.OTHER, None, text.splitlines()[0] if text else type(original).__name__)


def server_address(host: Any, port: Any) -> str:
    """``host:port`` for messages about a server that does not answer."""
    return f"{host or 'localhost'}:{port or 'default port'}"
