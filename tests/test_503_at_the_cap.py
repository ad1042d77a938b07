"""A request whose connect gives up at a full cap, in each face (the middleware, Flask's
``DbHealth``), against the real capped server: a 503 with the same body and Retry-After,
never the driver's text; one log line per minute at most, naming the holders the registry
knows (this process's three); the next request after they let go is served."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import sqlalchemy_url
from django.db import connections
from django.test import Client, override_settings
from faces import DJANGO
from holders import Holder, Holders, open_and_tell

from pa_dbhealth import middleware
from pa_dbhealth.core import unavailable


@dataclass
class AtTheCap:
    get: Callable[[], tuple[int, str, dict[str, str]]]  # a request: status, body, headers
    logger: str  # where the face logs its cap report
    held: list[int]  # the server's ids of the three connections that fill the cap
    release: Callable[[], None]  # they let go


def django_at_the_cap(holders: Holders, where: Path) -> Iterator[AtTheCap]:
    middleware.snapshot_throttle.reset()
    connections["default"].close()
    options = {"REGISTRY_DIR": str(where), "CONNECT_RETRY": 0.5}
    with override_settings(ROOT_URLCONF="testsite.hygiene_urls", PA_DBHEALTH=options):
        threads = [Holder(f"holder-{n}", open_and_tell).hold() for n in range(3)]
        holders.started.extend(threads)

        def get() -> tuple[int, str, dict[str, str]]:
            response = Client().get("/select-one/")
            return response.status_code, response.content.decode(), dict(response.headers)

        def release() -> None:
            for thread in threads:
                thread.release()

        try:
            yield AtTheCap(get, "pa_dbhealth.middleware", [t.value for t in threads], release)
        finally:
            # The test client keeps the request's connection (it turns close_old_connections off).
            connections["default"].close()


def flask_at_the_cap(
    make_engine: Callable[..., Any], server: Any, where: Path
) -> Iterator[AtTheCap]:
    from flask import Flask
    from flask_sqlalchemy import SQLAlchemy
    from sqla_registry import writing_to
    from sqlalchemy import text

    from pa_dbhealth.flask import DbHealth
    from pa_dbhealth.flask import unavailable as flask_unavailable
    from pa_dbhealth.sqlalchemy import install

    flask_unavailable.report_throttle.reset()
    with writing_to(where):
        holder = install(make_engine(pool_size=3, max_overflow=0), {"REGISTRY_DIR": str(where)})
        held = [holder.connect() for _ in range(3)]  # the whole cap, published by this process
        ids = [int(c.execute(text("SELECT CONNECTION_ID()")).scalar_one()) for c in held]
        app = Flask("pa_dbhealth_unavailable_app")
        app.config["SQLALCHEMY_DATABASE_URI"] = sqlalchemy_url(server)
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"pool_size": 1, "max_overflow": 0}
        app.config["PA_DBHEALTH"] = {"REGISTRY_DIR": str(where), "CONNECT_RETRY": 0.5}
        db = SQLAlchemy(app)

        @app.get("/select-one/")
        def select_one() -> str:
            return str(db.session.execute(text("SELECT 1")).scalar_one())

        DbHealth(app, db=db)

        def get() -> tuple[int, str, dict[str, str]]:
            response = app.test_client().get("/select-one/")
            return response.status_code, response.text, dict(response.headers)

        def release() -> None:
            for connection in held:
                connection.close()
            holder.dispose()

        try:
            yield AtTheCap(get, "pa_dbhealth.flask", ids, release)
        finally:
            release()
            with app.app_context():
                db.engine.dispose()


@pytest.fixture
def at_the_cap(
    face: str,
    holders: Holders,
    make_engine: Callable[..., Any],
    server: Any,
    tmp_path: Path,
    django_db_blocker: Any,
) -> Iterator[AtTheCap]:
    """The account's whole cap held by three connections of this process, each published in
    a registry of the test's own, and a site of the face whose connects wait 0.5 s."""
    where = tmp_path / "holders"
    with django_db_blocker.unblock():
        if face == DJANGO:
            yield from django_at_the_cap(holders, where)
        else:
            yield from flask_at_the_cap(make_engine, server, where)


def test_a_connect_that_gives_up_at_the_cap_is_a_503_naming_the_holders(
    at_the_cap: AtTheCap, server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger=at_the_cap.logger):
        status, body, headers = at_the_cap.get()
        second, _, _ = at_the_cap.get()
    assert status == 503 == second
    assert body == unavailable.CAP_BODY
    assert headers["Retry-After"] == str(unavailable.RETRY_AFTER)
    # Nothing of the driver's message (it names the account) reaches the visitor.
    assert server.user not in body and "1226" not in body
    (report,) = [r.getMessage() for r in caplog.records if r.name == at_the_cap.logger]
    assert "the cap is full" in report  # once per minute at most
    assert "the registry of holders says" in report
    for connection_id in at_the_cap.held:
        assert f"id {connection_id}: pid {os.getpid()} on " in report
    at_the_cap.release()
    status, body, _ = at_the_cap.get()
    assert (status, body) == (200, "1")  # freed: served again
