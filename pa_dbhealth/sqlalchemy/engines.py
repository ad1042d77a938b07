"""What the SQLAlchemy face knows of an engine without connecting: its vendor, its name in
logs, the server and account it logs in to, and the errors its driver raises."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from pa_dbhealth.core.server_id import account_key

__all__ = ["database_errors", "engine_account", "engine_key", "engine_vendor", "vendor_of"]

# SQLAlchemy dialect names -> the vendors core.vendors knows ("mariadb" is MySQL's dialect).
_VENDORS = {"mysql": "mysql", "mariadb": "mysql", "postgresql": "postgresql"}


def vendor_of(dialect_name: str) -> str:
    """``"mysql"``, ``"postgresql"`` or the dialect's own name (``"sqlite"``, ...)."""
    return _VENDORS.get(dialect_name, dialect_name)


def engine_vendor(engine: Engine) -> str:
    """``"mysql"``, ``"postgresql"`` or the dialect's own name (``"sqlite"``, ...)."""
    return vendor_of(engine.dialect.name)


def engine_key(engine: Engine) -> str:
    """What pa_dbhealth calls an engine's database in logs and its learned timeouts: the URL
    without the password."""
    return engine.url.render_as_string(hide_password=True)


def engine_account(engine: Engine) -> tuple[str, str]:
    """``(server, account)`` of an engine, keyed as every face keys its own
    (``core.server_id.account_key``; a ``unix_socket`` in the URL's query included)."""
    url = engine.url
    socket = url.query.get("unix_socket")
    return account_key(engine_vendor(engine), url.host, url.port, url.username, socket)


def database_errors(engine: Engine) -> tuple[type[BaseException], ...]:
    """The errors a connect or a probe of this engine raises for a database problem."""
    dbapi = engine.dialect.loaded_dbapi
    return (DBAPIError, dbapi.Error) if dbapi is not None else (DBAPIError,)
