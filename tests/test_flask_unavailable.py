"""The Flask face's 503 against a server that is gone, and a bad query that is no 503. (The
503 at a full cap, for both faces, is test_503_at_the_cap's.)"""

from __future__ import annotations

from collections.abc import Iterator
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
