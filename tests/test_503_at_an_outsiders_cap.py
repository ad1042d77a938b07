"""At a cap someone else holds, a site under uWSGI 4 x 2 in each face: the Django test site
with the retrying backend and the middleware, and Flask + Flask-SQLAlchemy wired as the
README says (``engine_options()``, ``DbHealth``). Each request is answered 503 with
Retry-After within CONNECT_RETRY + 1 s, the waiters together try the server about 20 times
a second, and the face's ``dbconnections`` answers at once from the registry, naming what
another host's entry claims."""

from __future__ import annotations

import os
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import sqlalchemy_url
from faces import DJANGO
from outsiders import PROBES_PER_SECOND, RETIRING, aborted_connects, answers, cap_held_outside
from processes import Finished, Processes, Running, run, uwsgi_binary

from pa_dbhealth import sandbox
from pa_dbhealth.core import line as lines
from pa_dbhealth.holders import server_of

BUDGET = 2.0

FLASK_APP = f"""
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


@app.get("/connection/")
def connection():
    return str(db.session.execute(text("SELECT CONNECTION_ID()")).scalar_one())
"""


@dataclass
class UnderUwsgi:
    url: str  # a view that uses the database
    dbconnections: Callable[[], Finished]  # the face's listing, in a process of its own


def django_site(processes: Processes, settings_dict: dict[str, Any]) -> UnderUwsgi:
    settings = {
        "PA_DBHEALTH": {"CONNECT_RETRY": BUDGET},
        "DATABASES": {"default": {**settings_dict, "TEST": {}}},
    }
    site = processes.uwsgi(processes=4, threads=2, settings=settings)
    return UnderUwsgi(
        site.url + "/connection/",
        lambda: processes.manage("dbconnections", settings={"DATABASES": settings["DATABASES"]}),
    )


def flask_site(processes: Processes, folder: Path, server: Any) -> UnderUwsgi:
    binary = uwsgi_binary()
    if binary is None:
        pytest.skip("uWSGI is not installed (pip install uwsgi)")
    pytest.importorskip("flask_sqlalchemy")
    (folder / "outside_app.py").write_text(textwrap.dedent(FLASK_APP).lstrip())
    env = {**os.environ, "PYTHONPATH": str(folder), "OUTSIDE_URL": sqlalchemy_url(server)}
    port = sandbox.free_port()
    argv = [
        binary, "--master", "--need-app", "--strict", f"--http-socket=127.0.0.1:{port}",
        "--processes=4", "--threads=2", f"--home={sys.prefix}", f"--pythonpath={folder}",
        "--module=outside_app:app",
    ]  # fmt: skip
    site = processes.spawn(argv, env=env, name="uwsgi-flask")
    site.wait_for(lambda log: log.count("spawned uWSGI worker") >= 4, 60)
    url = f"http://127.0.0.1:{port}/connection/"
    wait_answering(site, url)
    lines.forget(*server_of(server.database_settings(), "mysql"))  # learned afresh by each
    flask = [sys.executable, "-m", "flask", "--app", "outside_app", "dbconnections"]
    return UnderUwsgi(url, lambda: run(flask, env=env, cwd=folder, timeout=60))


def wait_answering(site: Running, url: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        found, _ = answers(url, 1)
        if found[0][0] == 200:
            return
        assert time.monotonic() < deadline, site.log()
        time.sleep(0.1)


@pytest.mark.usefixtures("unblocked_db")
@pytest.mark.parametrize("requests", [1, 4, 8])
def test_requests_at_an_outsiders_cap_answer_503_with_retry_after_under_uwsgi(
    face: str,
    retrying_line: tuple[dict[str, Any], lines.Line],
    processes: Processes,
    tmp_path: Path,
    server: Any,
    raw_connections: Any,
    account_ids: Any,
    admin: Any,
    requests: int,
) -> None:
    if face == DJANGO:
        site = django_site(processes, retrying_line[0])
    else:
        site = flask_site(processes, tmp_path, server)
    with cap_held_outside(server, raw_connections, account_ids):
        before = aborted_connects(admin)
        found, elapsed = answers(site.url, requests)
        refused = aborted_connects(admin) - before
        listing = site.dbconnections()
    print(f"\n{requests} {face} request(s) under uWSGI 4x2: {refused / elapsed:.1f} refused/s")
    assert all(status == 503 and took <= BUDGET + 1 and after for status, took, after in found), (
        found
    )
    # The head's probes, each request's first try and last word, each worker's first refusal.
    assert refused <= PROBES_PER_SECOND * elapsed + 2 * requests + RETIRING + 4 + 3
    assert listing.returncode == 0, listing.err
    headline = "3 of 3 in use (the server refused this look: 1226): 1 named below, 2 not tracked"
    assert headline in listing.out, listing.out
    assert "cron-elsewhere" in listing.out  # another host's entry, named from the registry
