"""At a cap someone else holds, for Flask + Flask-SQLAlchemy wired as the README says
(``engine_options()``, ``DbHealth``) under uWSGI 4 x 2: each request is answered 503 with
Retry-After within CONNECT_RETRY + 1 s, the waiters together try the server about 20 times
a second, and ``flask dbconnections`` answers at once from the registry."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import sqlalchemy_url
from outsiders import PROBES_PER_SECOND, RETIRING, aborted_connects, answers, cap_held_outside
from processes import Processes, Running, uwsgi_binary

from pa_dbhealth import sandbox
from pa_dbhealth.core import line as lines
from pa_dbhealth.holders import server_of

pytest.importorskip("flask_sqlalchemy")
pytestmark = pytest.mark.matrix_once  # no Django in it: the same on every Django version

BUDGET = 2.0

APP = f"""
import os

from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import text

from pa_dbhealth.flask import DbHealth, engine_options

app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["OUTSIDE_URL"]
app.config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(os.environ["OUTSIDE_URL"])
app.config["PA_DBHEALTH"] = {{"CONNECT_RETRY": {BUDGET}}}
db = SQLAlchemy(app)
DbHealth(app, db=db)


@app.get("/q/")
def q():
    return str(db.session.execute(text("SELECT CONNECTION_ID()")).scalar_one())
"""


@pytest.fixture
def flask_site(tmp_path: Path, processes: Processes, server: Any) -> tuple[str, dict[str, str]]:
    binary = uwsgi_binary()
    if binary is None:
        pytest.skip("uWSGI is not installed (pip install uwsgi)")
    (tmp_path / "outside_app.py").write_text(textwrap.dedent(APP).lstrip())
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "OUTSIDE_URL": sqlalchemy_url(server)}
    port = sandbox.free_port()
    argv = [
        binary, "--master", "--need-app", "--strict", f"--http-socket=127.0.0.1:{port}",
        "--processes=4", "--threads=2", f"--home={sys.prefix}", f"--pythonpath={tmp_path}",
        "--module=outside_app:app",
    ]  # fmt: skip
    site = processes.spawn(argv, env=env, name="uwsgi-flask")
    site.wait_for(lambda log: log.count("spawned uWSGI worker") >= 4, 60)
    wait_answering(site, port)
    where = server_of(server.database_settings(), "mysql")
    lines.forget(*where)  # each worker learns the cap afresh, as after a deploy
    return f"http://127.0.0.1:{port}", env


def wait_answering(site: Running, port: int) -> None:
    deadline = time.monotonic() + 60
    while True:
        found, _ = answers(f"http://127.0.0.1:{port}/q/", 1)
        if found[0][0] == 200:
            return
        assert time.monotonic() < deadline, site.log()
        time.sleep(0.1)


@pytest.mark.parametrize("requests", [1, 4, 8])
def test_flask_requests_at_an_outsiders_cap_answer_503_with_retry_after(
    flask_site: tuple[str, dict[str, str]],
    server: Any,
    raw_connections: Any,
    account_ids: Any,
    admin: Any,
    requests: int,
) -> None:
    url, env = flask_site
    with cap_held_outside(server, raw_connections, account_ids):
        before = aborted_connects(admin)
        found, elapsed = answers(url + "/q/", requests)
        refused = aborted_connects(admin) - before
        listing = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "outside_app", "dbconnections"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=env["PYTHONPATH"],
        )
    print(f"\n{requests} Flask request(s) under uWSGI 4x2: {refused / elapsed:.1f} refused/s")
    assert all(status == 503 and took <= BUDGET + 1 and after for status, took, after in found), (
        found
    )
    assert refused <= PROBES_PER_SECOND * elapsed + 2 * requests + RETIRING + 4 + 3
    assert listing.returncode == 0, listing.stderr
    headline = "3 of 3 in use (the server refused this look: 1226): 1 named below, 2 not tracked"
    assert headline in listing.stdout, listing.stdout
