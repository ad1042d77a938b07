"""The SQLAlchemy face's registry of holders, in this process: what ``install()`` publishes,
when, and what a Flask request pays for it (nothing, for a connection that lives within it)."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import sqlalchemy_url
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqla_registry import writing_to
from sqlalchemy import text
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from pa_dbhealth.core import registry
from pa_dbhealth.core.registry.files import file_name
from pa_dbhealth.core.registry.process import this_host
from pa_dbhealth.flask import DbHealth
from pa_dbhealth.sqlalchemy import holding, install, tracker

pytestmark = pytest.mark.matrix_once  # the same on every Django version


@pytest.fixture
def where(tmp_path: Path) -> Iterator[Path]:
    """A registry of this test's own, where this process writes (its first engine's)."""
    with writing_to(tmp_path / "holders") as place:
        yield place


def published(where: Path, server: Any) -> list[registry.Holder]:
    found = registry.read(where)
    return found.holders(registry.server_key("mysql", server.host, server.port), server.user)


def mine(where: Path) -> Path:
    return where / file_name(this_host(), os.getpid())


def connection_id(connection: Any) -> int:
    return int(connection.execute(text("SELECT CONNECTION_ID()")).scalar_one())


def test_a_connection_opened_outside_a_request_is_published_at_once(
    make_engine: Callable[..., Any], where: Path, server: Any
) -> None:
    engine = install(make_engine(pool_size=1, max_overflow=0), {"REGISTRY_DIR": str(where)})
    with engine.connect() as connection:
        line = sys._getframe().f_lineno - 1
        server_id = connection_id(connection)
        (holder,) = published(where, server)
    assert holder.connection.id == server_id
    assert holder.connection.name == "default"
    assert holder.connection.thread == "MainThread"
    assert holder.connection.caller == f"{__file__}:{line} in {sys._getframe().f_code.co_name}"
    assert holder.process.pid == os.getpid()
    assert holder.connection.leak is None
    (holder,) = published(where, server)  # back in the pool: still held by this process
    assert holder.connection.id == server_id
    engine.dispose()  # closed: its entry goes at once
    assert published(where, server) == []
    assert not mine(where).exists()


def test_a_session_held_too_long_is_published_as_a_leak_without_another_event(
    make_engine: Callable[..., Any], where: Path, server: Any
) -> None:
    engine = install(
        make_engine(pool_size=1, max_overflow=0), {"REGISTRY_DIR": str(where)}, leak_after=0.3
    )
    with Session(engine) as session:
        session.execute(text("SELECT 1"))  # the session keeps the connection checked out
        (holder,) = published(where, server)
        assert holder.connection.leak is None
        deadline = time.monotonic() + 5
        while holder.connection.leak is None and time.monotonic() < deadline:
            time.sleep(0.05)  # nothing happens in this process: the timer notices
            (holder,) = published(where, server)
        assert holder.connection.leak is not None
        assert holder.connection.leak.kind == tracker.HELD_TOO_LONG
        assert "checked out for 0.3 s or more" in holder.connection.leak.why
        assert "with Session() as session" in holder.connection.leak.fix
    engine.dispose()


def test_a_module_level_session_is_published_as_a_leak(
    make_engine: Callable[..., Any],
    where: Path,
    server: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = install(make_engine(pool_size=1, max_overflow=0), {"REGISTRY_DIR": str(where)})
    (tmp_path / "module_session.py").write_text(
        "from sqlalchemy import text\n"
        "from sqlalchemy.orm import Session\n"
        "import engine_holder\n"
        "session = Session(engine_holder.engine)\n"
        "session.execute(text('SELECT 1'))\n"
    )
    holder_module = type(sys)("engine_holder")
    holder_module.engine = engine  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "engine_holder", holder_module)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        import module_session

        (holder,) = published(where, server)
        assert holder.connection.caller is not None
        assert "module_session.py:5 in <module>" in holder.connection.caller
        assert holder.connection.leak is not None
        assert holder.connection.leak.kind == registry.MODULE_SESSION
        assert "not at module level" in holder.connection.leak.fix
        module_session.session.close()
    finally:
        sys.modules.pop("module_session", None)
    engine.dispose()


def flask_app(server: Any, where: Path, **engine_options: Any) -> tuple[Flask, SQLAlchemy]:
    app = Flask("pa_dbhealth_holders_app")
    app.config["SQLALCHEMY_DATABASE_URI"] = sqlalchemy_url(server)
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options
    app.config["PA_DBHEALTH"] = {"REGISTRY_DIR": str(where)}
    db = SQLAlchemy(app)

    @app.get("/id/")
    def show_id() -> str:
        return str(db.session.execute(text("SELECT CONNECTION_ID()")).scalar_one())

    DbHealth(app, db=db)
    return app, db


def test_a_request_that_opens_and_closes_its_connection_writes_nothing(
    server: Any, where: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes: list[Any] = []
    original = registry.Publisher._write

    def counting(self: registry.Publisher, *args: Any) -> None:
        writes.append(args)
        original(self, *args)

    monkeypatch.setattr(registry.Publisher, "_write", counting)
    app, _db = flask_app(server, where, poolclass=NullPool)
    client = app.test_client()
    for _ in range(10):
        assert client.get("/id/").status_code == 200
    assert writes == []
    assert not where.exists()


def test_a_pooled_connection_is_published_when_it_outlives_its_request(
    server: Any, where: Path
) -> None:
    app, db = flask_app(server, where, pool_size=1, max_overflow=0)
    client = app.test_client()
    server_id = int(client.get("/id/").text)
    (holder,) = published(where, server)
    assert holder.connection.id == server_id
    assert holder.connection.caller is not None and "in show_id" in holder.connection.caller
    written = mine(where).stat().st_mtime_ns
    for _ in range(5):
        assert int(client.get("/id/").text) == server_id
    assert mine(where).stat().st_mtime_ns == written  # same connection, last use not yet due
    with app.app_context():
        db.engine.dispose()
    assert published(where, server) == []


def test_an_unwritable_registry_costs_one_debug_line(
    make_engine: Callable[..., Any],
    tmp_path: Path,
    server: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    before = holding._place
    holding._place = blocked / "holders"
    try:
        options = {"REGISTRY_DIR": str(holding._place)}
        engine = install(make_engine(pool_size=1, max_overflow=0), options)
        with (
            caplog.at_level(logging.DEBUG, logger="pa_dbhealth.registry"),
            engine.connect() as connection,
        ):
            connection_id(connection)
        lines = [r for r in caplog.records if r.name == "pa_dbhealth.registry"]
        assert len(lines) == 1 and lines[0].levelno == logging.DEBUG
        assert "not written" in lines[0].getMessage()
        engine.dispose()
    finally:
        holding._place = before
        registry.publisher._retry_at = 0.0
