"""The Flask + SQLAlchemy counterpart of ``holder_project``: an app whose uWSGI workers keep
pooled connections, a ``flask`` command holding one in a thread of its own, and a
``python -c`` script whose module-level session opened one at import."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

from conftest import sqlalchemy_url
from holder_project import Project

from pa_dbhealth import sandbox

APP = """
import os
import sys
import threading

import click
from flask import Flask, request
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import text

from pa_dbhealth.flask import DbHealth

app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["HOLDERS_URL"]
app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"pool_size": 1, "max_overflow": 0}
app.config["PA_DBHEALTH"] = {"CONNECT_RETRY": float(os.environ["HOLDERS_RETRY"])}
db = SQLAlchemy(app)
DbHealth(app, db=db, leak_after=float(os.environ.get("HOLDERS_LEAK_AFTER", "60")))


@app.get("/hold/")
def hold():
    query = text("SELECT CONNECTION_ID(), SLEEP(:s)")
    connection_id = db.session.execute(query, {"s": float(request.args.get("s", 0))}).first()[0]
    return f"{os.getpid()} {connection_id}"


@app.cli.command("hold-in-thread")
def hold_in_thread():
    engine = db.engine
    opened = threading.Event()
    found = []

    def poll():
        with engine.connect() as connection:
            found.append(connection.execute(text("SELECT CONNECTION_ID()")).scalar_one())
            opened.set()
            threading.Event().wait()  # holds it, as a forgotten poller does

    threading.Thread(target=poll, name="poller", daemon=True).start()
    opened.wait(30)
    click.echo(f"holding {found[0]}")
    sys.stdin.read()
"""

# A module whose session, created at its top level, opens a connection at import.
LEAKY = """
import os

from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from pa_dbhealth.sqlalchemy import install

engine = install(create_engine(os.environ["HOLDERS_URL"]))
session = Session(engine)
CONNECTION_ID = session.execute(text("SELECT CONNECTION_ID()")).scalar_one()
"""

SCRIPT = (
    "import sys, leaky_sa; print(f'holding {leaky_sa.CONNECTION_ID}', flush=True); sys.stdin.read()"
)


def make_flask_project(
    root: Path, server: sandbox.SandboxInfo, registry: Path, connect_retry: float
) -> Project:
    """The app's files in ``root``, for the capped account of ``server`` (a pool of 1 per
    worker); every process started from it writes to ``registry``."""
    root.mkdir(parents=True, exist_ok=True)
    for name, text in {"flask_holders_app.py": APP, "leaky_sa.py": LEAKY}.items():
        (root / name).write_text(textwrap.dedent(text).lstrip())
    env = {
        **os.environ,
        "PYTHONPATH": str(root),
        "HOLDERS_URL": sqlalchemy_url(server),
        "HOLDERS_RETRY": str(connect_retry),
        "PA_DBHEALTH_REGISTRY_DIR": str(registry),
    }
    return Project(root, env)
