"""A database URL (``mysql://``, ``postgresql+psycopg://``, ...) parsed with the standard
library and opened with the driver itself: no SQLAlchemy, no Django.

    mysql://USER:PASSWORD@HOST:PORT/NAME            mysqlclient (PyMySQL when it is missing)
    mysql+mysqldb://...   mysql+pymysql://...       that driver
    postgresql://...   postgresql+psycopg://...     psycopg 3

Query parameters go to the driver (``?charset=utf8mb4``, ``?sslmode=require``). The
password is never shown: :meth:`DatabaseURL.redacted` writes it as ``***``.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit

from pa_dbhealth.core.liveness import close_quietly
from pa_dbhealth.core.look import LookTimedOut, connect_timeout_options, shut_down, within
from pa_dbhealth.core.server_id import account_key

__all__ = ["DatabaseURL", "LookTimedOut", "URLError", "parse"]

T = TypeVar("T")

# scheme -> (vendor, driver module, driver name); None: the first installed of the vendor's
_SCHEMES: dict[str, tuple[str, str | None]] = {
    "mysql": ("mysql", None),
    "mysql+mysqldb": ("mysql", "MySQLdb"),
    "mysql+pymysql": ("mysql", "pymysql"),
    "mariadb": ("mysql", None),
    "postgresql": ("postgresql", "psycopg"),
    "postgres": ("postgresql", "psycopg"),
    "postgresql+psycopg": ("postgresql", "psycopg"),
}
_PIP = {"MySQLdb": "mysqlclient", "pymysql": "PyMySQL", "psycopg": "psycopg[binary]"}
# What to say when the password cut the URL short: never the password, nor its encoded form.
_ENCODE = (
    "the URL's host cannot be right: an '@' comes after it, so the user or password holds a "
    "'/', '?', '#' or '@' that must be percent-encoded ('/' as %2F, '?' as %3F, '#' as %23, "
    "'@' as %40). This prints the encoded password without showing what you type: "
    'python3 -c "import getpass, urllib.parse; print(urllib.parse.quote(getpass.getpass(), '
    "safe=''))\""
)
_DEFAULT_PORTS = {"mysql": 3306, "postgresql": 5432}


class URLError(ValueError):
    """A URL pa_dbhealth cannot use, said in one line (without its password)."""


@dataclass(frozen=True)
class DatabaseURL:
    vendor: str  # "mysql" or "postgresql"
    driver: str  # the driver's module: "MySQLdb", "pymysql", "psycopg"
    host: str
    port: int | None
    user: str
    password: str = field(repr=False)
    database: str
    query: dict[str, str] = field(default_factory=dict)

    def redacted(self) -> str:
        """The URL with its password as ``***``."""
        auth = self.user + (":***" if self.password else "")
        port = f":{self.port}" if self.port else ""
        return f"{self.vendor}://{auth}@{self.host}{port}/{self.database}"

    @property
    def address(self) -> str:
        return f"{self.host or 'localhost'}:{self.port or _DEFAULT_PORTS[self.vendor]}"

    @property
    def account(self) -> tuple[str, str]:
        """``(server, account)`` as every face keys the line and the registry (a Unix
        socket's path when the URL names one)."""
        socket = self.query.get("unix_socket") or self.query.get("host")
        return account_key(self.vendor, self.host, self.port, self.user, socket)

    def errors(self) -> tuple[type[BaseException], ...]:
        """The driver's base error class: what a connect or a probe raises."""
        module = importlib.import_module(self.driver)
        return (module.Error,)

    def connect(self, timeout: float) -> Any:
        """A new DB-API connection (autocommit), waiting at most ``timeout`` for the server."""
        driver: Any = importlib.import_module(self.driver)
        bounded = connect_timeout_options(self.vendor, timeout)
        if self.vendor == "postgresql":
            params: dict[str, Any] = {"host": self.host, "user": self.user, "dbname": self.database}
            if self.port:
                params["port"] = self.port
            if self.password:
                params["password"] = self.password
            return driver.connect(**params, **bounded, **self.query, autocommit=True)
        params = {"host": self.host or "localhost", "user": self.user, "database": self.database}
        params.update(password=self.password, **bounded, **self.query)
        if self.port:
            params["port"] = self.port
        connection = driver.connect(**params)
        connection.autocommit(True)
        return connection


def _driver(vendor: str, named: str | None) -> str:
    candidates = [named] if named else ["MySQLdb", "pymysql"]
    for module in candidates:
        if importlib.util.find_spec(module) is not None:
            return module
    wanted = " or ".join(f"`pip install {_PIP[m]}`" for m in candidates)
    raise URLError(f"the {vendor} driver is not installed: {wanted}")


def _cut_short(parts: SplitResult) -> bool:
    """Whether a '/', '?' or '#' in the password ended the URL's host early: an '@' left in
    the path or fragment (``mysql://app:p@ss/word@db/app`` has the host ``ss``), or in the
    query of a URL without one before it (``mysql://app:pa?ss@db/app``)."""
    after = "@" in parts.path or "@" in parts.fragment
    return after or ("@" in parts.query and "@" not in parts.netloc)


def parse(url: str) -> DatabaseURL:
    """A :class:`DatabaseURL`, or :class:`URLError` saying what is wrong with ``url``."""
    try:
        parts = urlsplit(url.strip())
    except ValueError as exc:
        raise URLError(f"not a database URL: {exc}") from None
    if _cut_short(parts):  # before the port, which may be a piece of the password
        raise URLError(_ENCODE)
    try:
        port = parts.port
    except ValueError as exc:
        raise URLError(f"not a database URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        known = ", ".join(f"{s}://" for s in _SCHEMES)
        raise URLError(
            f"unsupported URL scheme {scheme + '://' if scheme else '(none)'}: use {known}"
        )
    vendor, named = _SCHEMES[scheme]
    database = unquote(parts.path.lstrip("/"))
    if not parts.hostname and "unix_socket" not in parts.query and "host" not in parts.query:
        raise URLError("the URL names no host: mysql://USER:PASSWORD@HOST:PORT/NAME")
    return DatabaseURL(
        vendor=vendor,
        driver=_driver(vendor, named),
        host=parts.hostname or "",
        port=port,
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        database=database,
        query=dict(parse_qsl(parts.query)),
    )


def look(url: DatabaseURL, question: Callable[[Any], T], *, timeout: float) -> T:
    """``question(dbapi_connection)`` on a connection of its own, opened with a connect
    timeout, closed after; the whole look bounded (``core.look.within``)."""
    opened: list[Any] = []
    abandoned = threading.Event()

    def work() -> T:
        raw = url.connect(timeout)
        opened.append(raw)
        try:
            if abandoned.is_set():
                raise LookTimedOut(timeout)
            return question(raw)
        finally:
            close_quietly(raw)

    def give_up() -> None:
        abandoned.set()
        for raw in opened:
            shut_down(raw)

    return within(2 * timeout, work, on_timeout=give_up)
