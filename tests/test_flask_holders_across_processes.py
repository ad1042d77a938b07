"""Who holds the connections of a Flask + SQLAlchemy site, across real processes: the app
under uWSGI with 2 workers keeping pooled connections, a ``flask`` command holding one in a
thread of its own, and a ``python -c`` script whose module-level session opened one at
import, against a capped server of their own. ``flask dbconnections`` (a process of its own
too) names each one's pid, program and the line that opened it, and still does with the cap
full, from the registry alone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import sqlalchemy_url
from holder_project import (
    Project,
    assert_pruned_after_kill,
    assert_registry_view,
    stop,
    uwsgi_binary,
    wait_for_line,
)

from pa_dbhealth import sandbox
from pa_dbhealth.core.registry.files import file_name
from pa_dbhealth.core.registry.process import this_host

pytestmark = pytest.mark.matrix_once  # the same on every Django version

LIMIT = 5  # 2 workers + the command + the script + dbconnections' own look
CONNECT_RETRY = 3.0

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


@dataclass
class Scene:
    server: sandbox.SandboxInfo
    project: Project
    registry: Path
    site: Any  # subprocess.Popen of uWSGI
    port: int
    workers: dict[int, int]  # connection id -> worker pid
    command: Any
    command_id: int
    script: Any
    script_id: int

    def entry(self, pid: int) -> Path:
        return self.registry / file_name(this_host(), pid)

    def flask(self, *args: str) -> tuple[str, str, int]:
        return self.run("-m", "flask", "--app", "flask_holders_app", *args)

    def run(self, *args: str) -> tuple[str, str, int]:
        done = subprocess.run(
            [sys.executable, *args],
            cwd=self.project.root,
            env=self.project.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return done.stdout, done.stderr, done.returncode


def start_site(project: Project, binary: str, port: int) -> Any:
    return project.popen(
        binary,
        "--master",
        "--need-app",
        "--die-on-term",
        f"--http-socket=127.0.0.1:{port}",
        "--processes=2",
        f"--home={sys.prefix}",
        f"--pythonpath={project.root}",
        "--module=flask_holders_app:app",
        f"--logto={project.root / 'uwsgi.log'}",
        session=True,
    )


def wait_ready(scene_get: Any, proc: Any, log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            scene_get("/hold/")
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                text = log.read_text() if log.exists() else ""
                raise AssertionError(f"uWSGI did not start:\n{text[-3000:]}") from None
            time.sleep(0.2)


def hold_both_workers(get: Any) -> dict[int, int]:
    """Requests two at a time until each worker has served one (and kept its connection)."""
    seen: dict[int, int] = {}
    with ThreadPoolExecutor(2) as pool:
        for _ in range(20):
            for answer in pool.map(lambda _: get("/hold/?s=0.3"), range(2)):
                pid, connection_id = map(int, answer.split())
                seen[pid] = connection_id
            if len(seen) == 2:
                return {connection_id: pid for pid, connection_id in seen.items()}
    raise AssertionError(f"one worker served every request: {seen}")


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    binary = uwsgi_binary()
    if binary is None:
        pytest.skip("uWSGI is not installed (pip install uwsgi)")
    base = tmp_path_factory.mktemp("flask_holders")
    server = sandbox.start(base / "db", limit=LIMIT)
    registry = base / "registry" / "holders"
    root = base / "project"
    root.mkdir()
    for name, text in {"flask_holders_app.py": APP, "leaky_sa.py": LEAKY}.items():
        (root / name).write_text(textwrap.dedent(text).lstrip())
    env = {
        **os.environ,
        "PYTHONPATH": str(root),
        "HOLDERS_URL": sqlalchemy_url(server),
        "HOLDERS_RETRY": str(CONNECT_RETRY),
        "PA_DBHEALTH_REGISTRY_DIR": str(registry),
    }
    project = Project(root, env)
    port = sandbox.free_port()
    site = start_site(project, binary, port)
    started = []
    try:

        def get(path: str) -> str:
            url = f"http://127.0.0.1:{port}{path}"
            with urllib.request.urlopen(url, timeout=30) as response:
                return str(response.read().decode())

        wait_ready(get, site, root / "uwsgi.log")
        workers = hold_both_workers(get)
        command = Project(root, {**env, "HOLDERS_LEAK_AFTER": "1"}).popen(
            sys.executable, "-m", "flask", "--app", "flask_holders_app", "hold-in-thread"
        )
        started.append(command)
        command_id = int(wait_for_line(command, "holding ").split()[1])
        script = project.popen(sys.executable, "-c", SCRIPT)
        started.append(script)
        script_id = int(wait_for_line(script, "holding ").split()[1])
        yield Scene(
            server,
            project,
            registry,
            site,
            port,
            workers,
            command,
            command_id,
            script,
            script_id,
        )
    finally:
        for proc in started:
            stop(proc)
        stop(site, signal.SIGINT)
        sandbox.stop(server)


def listing(scene: Scene) -> dict[str, Any]:
    out, err, code = scene.flask("dbconnections", "--format", "json")
    assert code == 0, err
    result: dict[str, Any] = json.loads(out)["databases"]["default"]
    return result


def test_flask_dbconnections_names_each_process_its_program_and_the_line_that_opened_it(
    scene: Scene,
) -> None:
    time.sleep(1.5)  # the command's thread has held its connection past its leak threshold
    result = listing(scene)
    rows = {row["id"]: row for row in result["connections"]}
    assert len(rows) == LIMIT  # the four holders and the command's own look
    for connection_id, pid in scene.workers.items():
        holder = rows[connection_id]["holder"]
        assert holder["pid"] == pid
        assert holder["host"] == this_host()
        assert "uwsgi" in holder["program"] and "(uWSGI worker " in holder["program"]
        assert "flask_holders_app.py:" in holder["origin"]
        assert holder["origin"].endswith(" in hold")
        assert holder["probable_leak"] is False and holder["leak"] is None

    holder = rows[scene.command_id]["holder"]
    assert holder["pid"] == scene.command.pid
    assert holder["program"].endswith("-m flask --app flask_holders_app hold-in-thread")
    assert holder["thread"] == "poller"
    assert "flask_holders_app.py:" in holder["origin"] and holder["origin"].endswith(" in poll")
    assert holder["probable_leak"] is True and holder["leak"]["kind"] == "held_too_long"
    assert "checked out for 1 s or more" in holder["leak"]["why"]

    holder = rows[scene.script_id]["holder"]
    assert holder["pid"] == scene.script.pid
    assert "-c import sys, leaky_sa" in holder["program"]
    assert "leaky_sa.py:10 in <module>" in holder["origin"]
    assert holder["probable_leak"] is True and holder["leak"]["kind"] == "module_session"
    assert "not at module level" in holder["leak"]["fix"]

    (own,) = [row for row in rows.values() if row["this_connection"]]
    assert own["holder"] is None


def test_python_m_pa_dbhealth_connections_names_them_too(scene: Scene) -> None:
    url = scene.project.env["HOLDERS_URL"]
    out, err, code = scene.run("-m", "pa_dbhealth", "connections", "--url", url, "--format", "json")
    assert code == 0, err
    rows = json.loads(out)["databases"]["default"]["connections"]
    named = {row["id"]: row["holder"]["pid"] for row in rows if row["holder"]}
    assert named == {
        **scene.workers,
        scene.command_id: scene.command.pid,
        scene.script_id: scene.script.pid,
    }


def test_with_the_cap_full_the_same_are_named_without_a_connection(scene: Scene) -> None:
    held = dict(scene.workers)
    held[scene.command_id] = scene.command.pid
    held[scene.script_id] = scene.script.pid
    console = scene.server.connect()  # the fifth: a console without pa_dbhealth
    try:
        started = time.monotonic()
        out, err, code = scene.flask("dbconnections")
        assert time.monotonic() - started < CONNECT_RETRY  # at once: no wait at the cap
        assert code == 0, err
        assert out.startswith(
            f"default: {LIMIT} of {LIMIT} in use (the server refused this look: 1226): "
            f"{len(held)} named below, {LIMIT - len(held)} not tracked"
        ), out
        assert "the registry of holders says (not the server)" in out.splitlines()[1]
        assert_registry_view(out, held, console.thread_id(), leaks=2)

        out, err, code = scene.flask("dbconnections", "--format", "json")
        assert code == 0, err
        view = json.loads(out)["databases"]["default"]
        assert view["source"] == "registry"
        assert {item["id"]: item["holder"]["pid"] for item in view["connections"]} == held
    finally:
        console.close()


def test_a_killed_process_entry_is_pruned_by_the_next_reader(scene: Scene) -> None:
    assert_pruned_after_kill(
        scene.script,
        scene.script_id,
        scene.entry(scene.script.pid),
        lambda: {row["id"] for row in listing(scene)["connections"]},
    )


def test_processes_that_exit_take_their_entries_with_them(scene: Scene) -> None:
    workers = sorted(scene.workers.values())
    assert all(scene.entry(pid).exists() for pid in workers)
    assert scene.entry(scene.command.pid).exists()
    scene.command.stdin.close()  # the command returns
    assert scene.command.wait(timeout=30) == 0
    stop(scene.site, signal.SIGINT)  # uWSGI's immediate shutdown; workers run atexit
    assert not scene.entry(scene.command.pid).exists()
    assert [pid for pid in workers if scene.entry(pid).exists()] == []
    assert sorted(p.name for p in scene.registry.iterdir()) == []
