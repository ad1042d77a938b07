"""The Flask face's 503 against the real capped server: a request whose connect gives up at
the cap gets the Django middleware's body and a Retry-After, never the driver's text, and
one log line names the holders from the registry; a server that is gone is a 503 too."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import sqlalchemy_url
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqla_registry import writing_to
from sqlalchemy import text

from pa_dbhealth.core import unavailable
from pa_dbhealth.flask import DbHealth
from pa_dbhealth.flask import unavailable as flask_unavailable
from pa_dbhealth.sqlalchemy import install

pytestmark = pytest.mark.matrix_once  # the same on every Django version


@pytest.fixture
def where(tmp_path: Path) -> Iterator[Path]:
    flask_unavailable.report_throttle.reset()
    with writing_to(tmp_path / "holders") as place:
        yield place


@pytest.fixture
def disposed() -> Iterator[list[SQLAlchemy]]:
    """The apps' Flask-SQLAlchemy objects, whose engines are disposed after the test."""
    made: list[SQLAlchemy] = []
    yield made
    for db in made:
        for engine in db._app_engines.values():  # every app's engines
            for one in engine.values():
                one.dispose()


def make_app(url: str, where: Path, disposed: list[SQLAlchemy], **options: Any) -> Flask:
    app = Flask("pa_dbhealth_unavailable_app")
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"pool_size": 1, "max_overflow": 0}
    app.config["PA_DBHEALTH"] = {"REGISTRY_DIR": str(where), **options}
    db = SQLAlchemy(app)
    disposed.append(db)

    @app.get("/one/")
    def one() -> str:
        return str(db.session.execute(text("SELECT 1")).scalar_one())

    @app.get("/bad-query/")
    def bad_query() -> str:
        return str(db.session.execute(text("SELECT * FROM no_such_table")).scalar_one())

    DbHealth(app, db=db)
    return app


def test_a_connect_that_gives_up_at_the_cap_is_a_503_naming_the_holders(
    make_engine: Callable[..., Any],
    server: Any,
    where: Path,
    caplog: pytest.LogCaptureFixture,
    disposed: list[SQLAlchemy],
) -> None:
    holder = install(make_engine(pool_size=3, max_overflow=0), {"REGISTRY_DIR": str(where)})
    held = [holder.connect() for _ in range(3)]  # the whole cap, published by this process
    ids = [c.execute(text("SELECT CONNECTION_ID()")).scalar_one() for c in held]
    app = make_app(sqlalchemy_url(server), where, disposed, CONNECT_RETRY=0.5)
    try:
        with caplog.at_level(logging.ERROR, logger="pa_dbhealth.flask"):
            response = app.test_client().get("/one/")
        assert response.status_code == 503
        assert response.text == unavailable.CAP_BODY
        assert response.headers["Retry-After"] == "5"
        assert server.user not in response.text and "1226" not in response.text
        (line,) = [r.getMessage() for r in caplog.records if r.name == "pa_dbhealth.flask"]
        assert "\n" not in line
        assert line.startswith("Database 'default': connection refused, the cap is full ((1226)")
        for connection_id in ids:
            assert f"id {connection_id}: pid {os.getpid()} on " in line
        assert "Held by (the registry of holders says)" in line
    finally:
        for connection in held:
            connection.close()
        holder.dispose()
    assert app.test_client().get("/one/").text == "1"  # freed: served again


def test_a_server_that_is_gone_is_a_503_and_a_bad_query_is_not(
    server: Any, where: Path, disposed: list[SQLAlchemy]
) -> None:
    gone = make_app("mysql+mysqldb://app:secret@127.0.0.1:9/app", where, disposed)
    response = gone.test_client().get("/one/")
    assert response.status_code == 503
    assert response.text == unavailable.GONE_BODY
    assert response.headers["Retry-After"] == "5"
    app = make_app(sqlalchemy_url(server), where, disposed)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    assert app.test_client().get("/bad-query/").status_code == 500
