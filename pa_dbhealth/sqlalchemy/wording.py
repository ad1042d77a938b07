"""How the SQLAlchemy and Flask faces word a fix: in ``create_engine`` arguments, or in
Flask-SQLAlchemy's ``SQLALCHEMY_ENGINE_OPTIONS`` / ``SQLALCHEMY_BINDS``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pa_dbhealth.core.audit import Terms


def _value(value: Any) -> str:
    if isinstance(value, type):
        return value.__name__  # poolclass=NullPool
    return repr(value)


@dataclass(frozen=True)
class Wording:
    """Where an engine's options are written, and what to call to install pa_dbhealth."""

    terms: Terms
    install: str  # "pa_dbhealth.sqlalchemy.install(engine)"
    bind: str | None = None  # a Flask-SQLAlchemy bind key; None: the default engine
    flask: bool = False
    recycle_note: str = ""  # said after pool_recycle's value: where it came from

    def setting(self, key: str) -> str:
        """``pool_recycle`` or ``SQLALCHEMY_ENGINE_OPTIONS['pool_recycle']``."""
        if not self.flask:
            return key
        if self.bind is None:
            return f"SQLALCHEMY_ENGINE_OPTIONS[{key!r}]"
        return f"SQLALCHEMY_BINDS[{self.bind!r}][{key!r}]"

    def set_one(self, key: str, value: Any) -> str:
        """One option as the user adds it."""
        if not self.flask:
            return f"create_engine(url, ..., {key}={_value(value)})"
        return f"{self.setting(key)} = {_value(value)}"

    def write(self, options: Mapping[str, Any]) -> str:
        """The options as the user writes them."""
        if not self.flask:
            args = ", ".join(f"{key}={_value(value)}" for key, value in options.items())
            return f"create_engine(url, {args})"
        pairs = ", ".join(f"{key!r}: {_value(value)}" for key, value in options.items())
        if self.bind is None:
            return f"SQLALCHEMY_ENGINE_OPTIONS = {{{pairs}}}"
        return f"SQLALCHEMY_BINDS[{self.bind!r}] = {{'url': ..., {pairs}}}"


PLAIN_TERMS = Terms(
    "PA_DBHEALTH",
    "python -m pa_dbhealth connections",
    "the engine's URL",
    paging="select(...).limit(n), .execution_options(yield_per=n), Result.partitions()",
    workers_also=", or pass workers= to the audit",
)
PLAIN = Wording(PLAIN_TERMS, install="pa_dbhealth.sqlalchemy.install(engine)")

FLASK_TERMS = Terms(
    "app.config['PA_DBHEALTH']",
    "flask dbconnections",
    "SQLALCHEMY_DATABASE_URI",
    paging="db.paginate(...), select(...).limit(n), .execution_options(yield_per=n)",
)


def flask_wording(bind: str | None, recycle_note: str = "") -> Wording:
    """The wording for a Flask-SQLAlchemy engine (``bind`` None: the default one)."""
    return Wording(
        FLASK_TERMS,
        install="DbHealth(app, db=db)",
        bind=bind,
        flask=True,
        recycle_note=recycle_note,
    )
