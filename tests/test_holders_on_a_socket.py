"""One server reached through its Unix socket by both faces: a Django process (``HOST`` the
socket's path) and an SQLAlchemy engine (``?unix_socket=...`` in its URL) each hold a
connection. Both are filed under the same account key, so either face's listing
(``manage.py dbconnections``, ``flask dbconnections``) names both as tracked."""

from __future__ import annotations

import json
import os
import re
import sys
import textwrap
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from faces import DJANGO
from processes import Finished, Processes, Running, run

from pa_dbhealth.core import registry

HOLDING = re.compile(r"holding (\d+)")

DJANGO_HOLDER = """
import django, time
django.setup()
from django.db import connection
connection.ensure_connection()
print("holding", connection.connection.thread_id(), flush=True)
time.sleep(600)
"""

SQLALCHEMY_HOLDER = """
import os, time
from sqlalchemy import create_engine, text
from pa_dbhealth.sqlalchemy import install
engine = install(create_engine(os.environ["SOCKET_URL"]))
connection = engine.connect()
print("holding", connection.execute(text("SELECT CONNECTION_ID()")).scalar_one(), flush=True)
time.sleep(600)
"""

FLASK_APP = """
import os

from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from pa_dbhealth.flask import DbHealth

app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["SOCKET_URL"]
db = SQLAlchemy(app)
DbHealth(app, db=db)
"""


def socket_url(server: Any) -> str:
    """The capped account through the server's Unix socket, as an SQLAlchemy URL."""
    auth = f"{quote(server.user, safe='')}:{quote(server.password, safe='')}"
    return f"mysql+mysqldb://{auth}@localhost/{server.database}?unix_socket={server.socket}"


def socket_settings(server: Any) -> dict[str, Any]:
    """Django's DATABASES entry for the same: HOST is the socket's path."""
    return {**server.database_settings(), "HOST": server.socket, "PORT": "", "TEST": {}}


def holding(process: Running) -> int:
    text = process.wait_for(lambda log: HOLDING.search(log) is not None)
    found = HOLDING.search(text)
    assert found is not None
    return int(found.group(1))


def listing(
    face: str, processes: Processes, server: Any, folder: Path, env: dict[str, str]
) -> Finished:
    if face == DJANGO:
        databases = {"default": socket_settings(server)}
        return processes.manage(
            "dbconnections", "--format", "json", settings={"DATABASES": databases}
        )
    pytest.importorskip("flask_sqlalchemy")
    (folder / "socket_app.py").write_text(textwrap.dedent(FLASK_APP).lstrip())
    flask = [
        sys.executable,
        "-m",
        "flask",
        "--app",
        "socket_app",
        "dbconnections",
        "--format",
        "json",
    ]
    return run(flask, env={**env, "PYTHONPATH": str(folder)}, cwd=folder, timeout=60)


def test_a_django_site_and_an_engine_on_one_socket_see_each_others_holders(
    face: str, processes: Processes, server: Any, tmp_path: Path
) -> None:
    env = {**os.environ, "SOCKET_URL": socket_url(server)}
    django_settings = {"DATABASES": {"default": socket_settings(server)}}
    django_holder = processes.spawn(
        [sys.executable, "-c", DJANGO_HOLDER], env=processes.env(django_settings), name="django"
    )
    engine_holder = processes.spawn(
        [sys.executable, "-c", SQLALCHEMY_HOLDER], env=env, name="sqlalchemy"
    )
    held = {holding(django_holder): django_holder.pid, holding(engine_holder): engine_holder.pid}

    found = listing(face, processes, server, tmp_path, env)
    assert found.returncode == 0, found.err
    rows = json.loads(found.out)["databases"]["default"]["connections"]
    named = {row["id"]: row["holder"]["pid"] for row in rows if row["holder"]}
    assert named == held  # each one's connection tracked, whichever face wrote it

    entries = registry.read(registry.directory(None)).processes
    keys = {
        (held_connection.server, held_connection.account)
        for process in entries
        if process.pid in held.values()
        for held_connection in process.connections
    }
    assert keys == {(server.socket.lower(), server.user)}  # one account key for both faces
