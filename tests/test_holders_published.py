"""The registry of holders as each face writes it, in this process: a connection opened
outside a request is published at once and goes with its close; a request that opens and
closes its connection writes nothing; a connection kept past its request (Django's
persistent one, SQLAlchemy's pooled one) is published once, not at every request; an
unwritable registry costs one debug line. What only one face has (its leak rules) is in
test_holders.py (Django) and test_sqlalchemy_holders.py (SQLAlchemy)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from django.db import connections
from django.test import Client, override_settings
from faces import DJANGO

from pa_dbhealth import holders, tracker
from pa_dbhealth.core import registry
from pa_dbhealth.core.registry.files import file_name
from pa_dbhealth.core.registry.process import this_host


class DjangoFace:
    """The "default" alias; requests through the test client on the hygiene views."""

    def __init__(self, stack: ExitStack, where: Path, persistent: bool) -> None:
        connections.close_all()
        # The test client's requests may have left this thread's request flag set: with
        # CONN_MAX_AGE = 0 nothing listens for their end (see tracker.signals).
        tracker.request_finished(sender=None)
        stack.enter_context(
            override_settings(
                ROOT_URLCONF="testsite.hygiene_urls", PA_DBHEALTH={"REGISTRY_DIR": str(where)}
            )
        )
        settings_dict = connections["default"].settings_dict
        before = settings_dict["CONN_MAX_AGE"]
        settings_dict["CONN_MAX_AGE"] = 60 if persistent else 0
        stack.callback(settings_dict.__setitem__, "CONN_MAX_AGE", before)
        stack.callback(tracker.publish)
        stack.callback(connections.close_all)
        tracker.publish()
        self.client = Client()

    def open(self) -> tuple[int, int]:
        """Open a connection outside a request: its id, and the line that opened it."""
        connections["default"].ensure_connection()
        line = sys._getframe().f_lineno - 1
        return int(connections["default"].connection.thread_id()), line

    def request(self) -> int:
        """A request that uses the database: the id of the connection it used."""
        assert self.client.get("/select-one/").content == b"1"
        used = connections["default"].connection
        return -1 if used is None else int(used.thread_id())

    def close(self) -> None:
        """Close what this thread holds (Django: its connection; SQLAlchemy: the pool)."""
        connections["default"].close()

    def kept_in_a_pool(self) -> bool:
        return False


class EngineFace:
    """An installed engine with a pool of one, and a Flask app on it."""

    def __init__(
        self, stack: ExitStack, where: Path, persistent: bool, make_engine: Any, server: Any
    ) -> None:
        from conftest import sqlalchemy_url
        from flask import Flask
        from flask_sqlalchemy import SQLAlchemy
        from sqla_registry import writing_to
        from sqlalchemy import text
        from sqlalchemy.pool import NullPool

        from pa_dbhealth.flask import DbHealth
        from pa_dbhealth.sqlalchemy import install

        stack.enter_context(writing_to(where))
        self.text = text
        self.engine = install(
            make_engine(pool_size=1, max_overflow=0), {"REGISTRY_DIR": str(where)}
        )
        self.checked_out: Any = None
        app = Flask("pa_dbhealth_holders_app")
        app.config["SQLALCHEMY_DATABASE_URI"] = sqlalchemy_url(server)
        pool = {"pool_size": 1, "max_overflow": 0} if persistent else {"poolclass": NullPool}
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = pool
        app.config["PA_DBHEALTH"] = {"REGISTRY_DIR": str(where)}
        db = SQLAlchemy(app)

        @app.get("/id/")
        def show_id() -> str:
            return str(db.session.execute(text("SELECT CONNECTION_ID()")).scalar_one())

        DbHealth(app, db=db)
        self.client = app.test_client()
        self.app, self.db = app, db
        stack.callback(self.close)

    def open(self) -> tuple[int, int]:
        self.checked_out = self.engine.connect()
        line = sys._getframe().f_lineno - 1
        query = self.text("SELECT CONNECTION_ID()")
        return int(self.checked_out.execute(query).scalar_one()), line

    def request(self) -> int:
        return int(self.client.get("/id/").text)

    def close(self) -> None:
        if self.checked_out is not None:
            self.checked_out.close()  # back in the pool
            self.checked_out = None
            return
        self.engine.dispose()
        with self.app.app_context():
            self.db.engine.dispose()

    def kept_in_a_pool(self) -> bool:
        return True


Face = DjangoFace | EngineFace


@pytest.fixture
def where(tmp_path: Path) -> Path:
    return tmp_path / "holders"


@pytest.fixture
def site(
    face: str, make_engine: Any, server: Any, django_db_blocker: Any
) -> Iterator[Callable[..., Face]]:
    """``site(where, persistent=...)``: the face, publishing to ``where``, with connections
    kept past a request (persistent) or closed at its end."""
    with django_db_blocker.unblock(), ExitStack() as stack:

        def make(where: Path, persistent: bool) -> Face:
            if face == DJANGO:
                return DjangoFace(stack, where, persistent)
            return EngineFace(stack, where, persistent, make_engine, server)

        yield make


def published(where: Path, server: Any) -> list[registry.Holder]:
    key = holders.server_of(server.database_settings(), "mysql")
    return registry.read(where).holders(*key)


def mine(where: Path) -> Path:
    return where / file_name(this_host(), os.getpid())


def test_a_connection_opened_outside_a_request_is_published_at_once(
    site: Callable[..., Face], where: Path, server: Any
) -> None:
    face = site(where, persistent=True)
    server_id, line = face.open()
    (holder,) = published(where, server)
    assert holder.connection.id == server_id
    assert holder.connection.name == "default"
    assert holder.connection.thread == "MainThread"
    assert holder.connection.caller == f"{__file__}:{line} in open"
    assert holder.process.pid == os.getpid()
    assert holder.connection.leak is None and not holder.probable_leak  # a command's
    face.close()
    if face.kept_in_a_pool():
        (holder,) = published(where, server)  # back in the pool: still held by this process
        assert holder.connection.id == server_id
        face.close()
    assert published(where, server) == []  # its closing takes it out at once
    assert not mine(where).exists()


def test_a_request_that_opens_and_closes_its_connection_writes_nothing(
    site: Callable[..., Face], where: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes: list[Any] = []
    original = registry.Publisher._write

    def counting(self: registry.Publisher, *args: Any) -> None:
        writes.append(args)
        original(self, *args)

    monkeypatch.setattr(registry.Publisher, "_write", counting)
    face = site(where, persistent=False)
    for _ in range(10):
        face.request()
    assert writes == []
    assert not where.exists()


def test_a_kept_connection_is_published_when_it_outlives_its_request(
    site: Callable[..., Face], where: Path, server: Any
) -> None:
    face = site(where, persistent=True)
    server_id = face.request()
    (holder,) = published(where, server)
    assert holder.connection.id == server_id
    written = mine(where).stat().st_mtime_ns
    for _ in range(5):
        assert face.request() == server_id
    assert mine(where).stat().st_mtime_ns == written  # same connection, last use not yet due
    face.close()
    assert published(where, server) == []


def test_an_unwritable_registry_costs_one_debug_line(
    site: Callable[..., Face], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    try:
        with caplog.at_level(logging.DEBUG, logger="pa_dbhealth.registry"):
            face = site(blocked / "holders", persistent=True)
            for _ in range(5):
                face.request()
            face.close()
            for _ in range(5):
                face.request()
        lines = [r for r in caplog.records if r.name == "pa_dbhealth.registry"]
        assert len(lines) == 1 and lines[0].levelno == logging.DEBUG
        assert "not written" in lines[0].getMessage()
    finally:
        registry.publisher._retry_at = 0.0  # the next test's registry is tried at once
