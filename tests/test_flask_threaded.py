"""A threaded Flask + SQLAlchemy site under a threaded server on a unix socket, as the host's
new web system runs one: 200 requests, 4 at a time, against the account's cap of 3. With
``engine_options`` and ``DbHealth`` every request answers and the account holds no more
than the pool keeps; with Flask-SQLAlchemy's default pool (the control) it gets 1226."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import traffic_run
import unixhttp
from conftest import account_ids_once, sqlalchemy_url
from holder_project import stop

from pa_dbhealth import sandbox

pytestmark = pytest.mark.matrix_once  # the same on every Django version

APP = """
import json
import os

from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import text
from werkzeug.serving import run_simple

from pa_dbhealth.flask import DbHealth, engine_options

app = Flask(__name__)
url = os.environ["SITE_URL"]
app.config["SQLALCHEMY_DATABASE_URI"] = url
plain = os.environ["SITE_PLAIN"] == "1"
options = {} if plain else engine_options(url)
app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options
db = SQLAlchemy(app)
if not plain:
    DbHealth(app, db=db)


@app.get("/query/")
def query():
    return str(db.session.execute(text("SELECT CONNECTION_ID(), SLEEP(0.02)")).first()[0])


@app.get("/no-database/")
def no_database():
    return "ok"


@app.get("/options/")
def shown_options():
    return json.dumps({k: v for k, v in options.items() if isinstance(v, int)})


if __name__ == "__main__":
    run_simple("unix://" + os.environ["SITE_SOCKET"], 0, app, threaded=True)
"""
PATHS = ["/query/"]


class ThreadedFlask:
    """The app under werkzeug's threaded server (a thread per request) on a unix socket."""

    def __init__(self, server: sandbox.SandboxInfo, folder: Path, *, plain: bool) -> None:
        (folder / "site.py").write_text(textwrap.dedent(APP))
        self.socket = folder / "site.sock"
        self.log = folder / "site.log"
        env = {
            **os.environ,
            "SITE_URL": sqlalchemy_url(server),
            "SITE_PLAIN": "1" if plain else "0",
            "SITE_SOCKET": str(self.socket),
        }
        with self.log.open("wb") as log:
            command = [sys.executable, "site.py"]
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=log, cwd=folder)
        if not unixhttp.wait_until_serving(
            self.socket, "/no-database/", lambda: self.process.poll() is not None
        ):
            self.stop()
            pytest.fail(f"the Flask site did not start:\n{self.output()}")

    def get(self, path: str) -> tuple[int, bytes]:
        return unixhttp.get(self.socket, path)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        stop(self.process)


@pytest.fixture
def serve(server: sandbox.SandboxInfo, admin: Any) -> Iterator[Callable[[bool], ThreadedFlask]]:
    started: list[ThreadedFlask] = []
    folder = Path(tempfile.mkdtemp(prefix="pa-flask-"))  # a socket's path is short

    def start(plain: bool) -> ThreadedFlask:
        assert account_ids_once(admin, lambda ids: not ids) == [], "connections are left over"
        started.append(ThreadedFlask(server, folder, plain=plain))
        return started[-1]

    yield start
    for site in started:
        site.stop()
    shutil.rmtree(folder, ignore_errors=True)
    account_ids_once(admin, lambda ids: not ids)


def test_200_requests_4_at_a_time_stay_within_the_cap_and_the_pool(
    serve: Callable[[bool], ThreadedFlask], admin: Any, admin_factory: Callable[[], Any]
) -> None:
    site = serve(False)
    status, body = site.get("/options/")
    assert status == 200
    pool = json.loads(body)
    kept = pool["pool_size"]
    traffic = traffic_run.drive(
        site, PATHS, admin_factory, admin, concurrency=4, left=lambda ids: len(ids) <= kept
    )
    print(f"threaded Flask with engine_options {pool}: {traffic}")
    assert traffic.statuses == {200: 200}, site.output()
    assert traffic.cap_errors == 0 and "1226" not in site.output()
    assert traffic.most_in_flight == 4
    assert traffic.most_held <= 3
    assert max(traffic.left_after_rounds) <= kept  # what the pool keeps, nothing more


def test_control_the_default_pool_gets_1226(
    serve: Callable[[bool], ThreadedFlask], admin: Any, admin_factory: Callable[[], Any]
) -> None:
    site = serve(True)
    traffic = traffic_run.drive(site, PATHS, admin_factory, admin, concurrency=4, settle=0.1)
    print(f"threaded Flask with the default pool: {traffic}")
    assert traffic.statuses.get(500, 0) > 0
    assert traffic.cap_errors > 0
