"""``DbHealth``: pa_dbhealth as a Flask extension.

    db = SQLAlchemy(app)            # Flask-SQLAlchemy 3.x; or engine=create_engine(...)
    DbHealth(app, db=db)            # or DbHealth(db=db) and, later, .init_app(app)

It installs ``pa_dbhealth.sqlalchemy.install`` on every engine (all binds), registers
``flask dbcheck`` and ``flask dbconnections`` and serves the health view at ``/dbhealth/``.
Options come from ``app.config["PA_DBHEALTH"]`` (the Django setting's keys): read
leniently, so a bad value counts as its default, and ``flask dbcheck`` reports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Flask, appcontext_popped, has_request_context
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from pa_dbhealth.core import registry
from pa_dbhealth.core.findings import Finding
from pa_dbhealth.core.options import Options, Problem, effective, problems
from pa_dbhealth.core.registry import holders as account_holders
from pa_dbhealth.flask import cli, unavailable, views
from pa_dbhealth.sqlalchemy import events, holding

if TYPE_CHECKING:
    from flask_sqlalchemy import SQLAlchemy

__all__ = ["CONFIG_KEY", "DbHealth"]

CONFIG_KEY = "PA_DBHEALTH"
SETTING = "app.config['PA_DBHEALTH']"
DEFAULT = "default"  # what the commands and the health view call the default engine


class DbHealth:
    """pa_dbhealth for one or more Flask apps (``init_app``), over a Flask-SQLAlchemy ``db``
    (every bind) or a plain ``engine``."""

    def __init__(
        self,
        app: Flask | None = None,
        *,
        db: SQLAlchemy | None = None,
        engine: Engine | None = None,
        leak_after: float = events.LEAK_AFTER,
    ) -> None:
        if (db is None) == (engine is None):
            raise TypeError("DbHealth needs exactly one of db= (Flask-SQLAlchemy) or engine=")
        self.db = db
        self.engine = engine
        self.leak_after = leak_after
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Set pa_dbhealth up on ``app``; once per app: a second call with this extension is
        ignored, one with another ``DbHealth`` is an error."""
        found = app.extensions.get("pa_dbhealth")
        if found is self:
            return
        if found is not None:
            raise RuntimeError(
                "pa_dbhealth is already set up on this app by another DbHealth: create one "
                "DbHealth per app (DbHealth(app, db=db), or DbHealth(db=db).init_app(app))."
            )
        if self.db is not None and "sqlalchemy" not in app.extensions:
            raise RuntimeError(
                "DbHealth(db=db) needs Flask-SQLAlchemy set up on this app first: call "
                "db.init_app(app) (or SQLAlchemy(app)) before DbHealth.init_app(app)."
            )
        app.extensions["pa_dbhealth"] = self
        app.cli.add_command(cli.dbcheck)
        app.cli.add_command(cli.dbconnections)
        app.register_blueprint(views.blueprint())
        app.register_error_handler(DBAPIError, unavailable.database_unavailable)
        options = self.options(app)
        for name, engine in self.engines(app).items():
            events.install(engine, options, leak_after=self.leak_after, name=name)
        # A connection a request opens is published once it outlives the request.
        holding.in_request = has_request_context
        appcontext_popped.connect(holding.request_ended, app)

    def options(self, app: Flask) -> Options:
        """The effective options: valid values of ``app.config["PA_DBHEALTH"]``, defaults
        for the rest."""
        return effective(app.config.get(CONFIG_KEY))

    def problems(self, app: Flask) -> list[Problem]:
        """Everything wrong with ``app.config["PA_DBHEALTH"]``, one entry per key."""
        return problems(app.config.get(CONFIG_KEY), SETTING)

    def registry_findings(self, app: Flask) -> list[Finding]:
        """E028 when the registry of holders' directory cannot be used."""
        where = registry.directory(self.options(app).REGISTRY_DIR)
        return account_holders.refused(where, f"{SETTING}['REGISTRY_DIR']")

    def engines(self, app: Flask) -> dict[str, Engine]:
        """The app's engines by name: ``"default"`` and each bind key."""
        if self.engine is not None:
            return {DEFAULT: self.engine}
        assert self.db is not None
        with app.app_context():
            found = dict(self.db.engines)
        return {DEFAULT if key is None else str(key): engine for key, engine in found.items()}

    def bind_options(self, app: Flask, name: str) -> dict[str, Any]:
        """The engine options the app's config gives the named engine (Flask-SQLAlchemy's
        ``SQLALCHEMY_ENGINE_OPTIONS`` or the bind's dict), for wording fixes."""
        if self.db is None:
            return {}
        given = dict(getattr(self.db, "_engine_options", {}) or {})
        if name == DEFAULT:
            given.update(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
        else:
            bind = (app.config.get("SQLALCHEMY_BINDS") or {}).get(name)
            if isinstance(bind, dict):
                given.update(bind)
        return given
