"""Who holds the connections, across real processes, in each face: a site under uWSGI with
2 workers keeping their connections (Django's persistent ones, SQLAlchemy's pool), a
command holding one in a thread of its own, and a script that opened one at import, all
against a capped server of their own. The face's listing (``manage.py dbconnections``,
``flask dbconnections``; a process of its own too) names each one's pid, program and the
line that opened it, and still does with the cap full, from the registry alone."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import sqlalchemy_url
from faces import DJANGO, FLASK
from flask_holder_project import SCRIPT, make_flask_project
from holder_project import (
    Project,
    Site,
    assert_pruned_after_kill,
    assert_registry_view,
    make_project,
    stop,
    uwsgi_binary,
    wait_for_line,
)

from pa_dbhealth import sandbox
from pa_dbhealth.core.registry.files import file_name
from pa_dbhealth.core.registry.process import this_host

LIMIT = 5  # 2 workers + the command + the script + dbconnections' own look
CONNECT_RETRY = 3.0
FLASK_APP = ("-m", "flask", "--app", "flask_holders_app")


@dataclass(frozen=True)
class Expected:
    """What a face's listing says of each holder: the face's own words for the same facts."""

    site_module: str
    command: tuple[str, ...]  # python arguments of the command that holds in a thread
    script: tuple[str, ...]  # python arguments of the script that opened at import
    listing: tuple[str, ...]  # python arguments of the face's dbconnections
    leak_after: float  # seconds before the command's connection is a probable leak
    worker_origin: str
    command_program: str  # the end of the command's program
    command_origin: str
    command_leak: tuple[str, str, str]  # kind, field of the leak, words in it
    script_program: str  # in the script's program
    script_origin: str
    script_leak: tuple[str, str]  # kind, words in its fix


EXPECTED = {
    DJANGO: Expected(
        site_module="holders_site.wsgi:application",
        command=("-m", "django", "hold_in_thread"),
        script=("script.py",),
        listing=("-m", "django", "dbconnections"),
        leak_after=0.0,
        worker_origin="holders_site/urls.py:",
        command_program="-m django hold_in_thread",
        command_origin="hold_in_thread.py:",
        command_leak=("thread", "fix", "fresh_connections"),
        script_program="script.py",
        script_origin="leaky.py:3 in <module>",
        script_leak=("import", "open it inside the function"),
    ),
    FLASK: Expected(
        site_module="flask_holders_app:app",
        command=(*FLASK_APP, "hold-in-thread"),
        script=("-c", SCRIPT),
        listing=(*FLASK_APP, "dbconnections"),
        leak_after=1.0,
        worker_origin="flask_holders_app.py:",
        command_program="-m flask --app flask_holders_app hold-in-thread",
        command_origin="flask_holders_app.py:",
        command_leak=("held_too_long", "why", "checked out for 1 s or more"),
        script_program="-c import sys, leaky_sa",
        script_origin="leaky_sa.py:10 in <module>",
        script_leak=("module_session", "not at module level"),
    ),
}


@dataclass
class Scene:
    expected: Expected
    server: sandbox.SandboxInfo
    project: Project
    registry: Path
    site: Site
    workers: dict[int, int]  # connection id -> worker pid
    command: Any  # subprocess.Popen
    command_id: int
    script: Any
    script_id: int
    started: float  # when the command's connection was opened (monotonic)

    def entry(self, pid: int) -> Path:
        return self.registry / file_name(this_host(), pid)

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

    def dbconnections(self, *args: str) -> tuple[str, str, int]:
        return self.run(*self.expected.listing, *args)


def hold_both_workers(site: Site) -> dict[int, int]:
    """Requests two at a time until each worker has served one (and kept its connection)."""
    seen: dict[int, int] = {}
    with ThreadPoolExecutor(2) as pool:
        for _ in range(20):
            for answer in pool.map(lambda _: site.get("/hold/?s=0.3"), range(2)):
                pid, connection_id = map(int, answer.split())
                seen[pid] = connection_id
            if len(seen) == 2:
                return {connection_id: pid for pid, connection_id in seen.items()}
    raise AssertionError(f"one worker served every request: {seen}")


def make_face_project(face: str, base: Path, server: sandbox.SandboxInfo) -> Project:
    registry = base / "registry" / "holders"
    if face == DJANGO:
        return make_project(base / "project", server, registry, CONNECT_RETRY=CONNECT_RETRY)
    return make_flask_project(base / "project", server, registry, CONNECT_RETRY)


@pytest.fixture(scope="module")
def scene(face: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    binary = uwsgi_binary()
    if binary is None:
        pytest.skip("uWSGI is not installed (pip install uwsgi)")
    expected = EXPECTED[face]
    base = tmp_path_factory.mktemp(f"holders-{face}")
    server = sandbox.start(base / "db", limit=LIMIT)
    project = make_face_project(face, base, server)
    site = Site(project, binary, processes=2, module=expected.site_module)
    started = []
    try:
        site.wait_ready()
        workers = hold_both_workers(site)
        leak_after = {"HOLDERS_LEAK_AFTER": str(expected.leak_after)}
        command = Project(project.root, {**project.env, **leak_after}).popen(
            sys.executable, *expected.command
        )
        started.append(command)
        command_id = int(wait_for_line(command, "holding ").split()[1])
        opened = time.monotonic()
        script = project.popen(sys.executable, *expected.script)
        started.append(script)
        script_id = int(wait_for_line(script, "holding ").split()[1])
        yield Scene(
            expected,
            server,
            project,
            base / "registry" / "holders",
            site,
            workers,
            command,
            command_id,
            script,
            script_id,
            opened,
        )
    finally:
        for proc in started:
            stop(proc)
        site.stop()
        sandbox.stop(server)


def listing(scene: Scene) -> dict[str, Any]:
    out, err, code = scene.dbconnections("--format", "json")
    assert code == 0, err
    result: dict[str, Any] = json.loads(out)["databases"]["default"]
    return result


def test_dbconnections_names_each_process_its_program_and_the_line_that_opened_it(
    scene: Scene,
) -> None:
    expected = scene.expected
    # The command's thread has held its connection past the face's leak threshold.
    time.sleep(max(0.0, scene.started + expected.leak_after + 0.5 - time.monotonic()))
    result = listing(scene)
    rows = {row["id"]: row for row in result["connections"]}
    assert len(rows) == LIMIT  # the four holders and the command's own look
    for connection_id, pid in scene.workers.items():
        holder = rows[connection_id]["holder"]
        assert holder["pid"] == pid
        assert holder["host"] == this_host()
        assert "uwsgi" in holder["program"] and "(uWSGI worker " in holder["program"]
        assert holder["thread"].startswith("uWSGIWorker")  # uWSGI names its threads
        assert expected.worker_origin in holder["origin"]
        assert holder["origin"].endswith(" in hold")
        assert holder["probable_leak"] is False and holder["leak"] is None

    holder = rows[scene.command_id]["holder"]
    assert holder["pid"] == scene.command.pid
    assert holder["program"].endswith(expected.command_program)
    assert holder["thread"] == "poller"
    assert expected.command_origin in holder["origin"] and holder["origin"].endswith(" in poll")
    kind, field, words = expected.command_leak
    assert holder["probable_leak"] is True and holder["leak"]["kind"] == kind
    assert words in holder["leak"][field]

    holder = rows[scene.script_id]["holder"]
    assert holder["pid"] == scene.script.pid
    assert expected.script_program in holder["program"]
    assert expected.script_origin in holder["origin"]
    kind, words = expected.script_leak
    assert holder["probable_leak"] is True and holder["leak"]["kind"] == kind
    assert words in holder["leak"]["fix"]

    (own,) = [row for row in rows.values() if row["this_connection"]]
    assert own["holder"] is None


def test_python_m_pa_dbhealth_connections_names_them_too(scene: Scene) -> None:
    url = sqlalchemy_url(scene.server)
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
        out, err, code = scene.dbconnections()
        assert time.monotonic() - started < CONNECT_RETRY  # at once: a look never waits
        assert code == 0, err
        assert "gave up" not in err
        assert out.startswith(
            f"default: {LIMIT} of {LIMIT} in use (the server refused this look: 1226): "
            f"{len(held)} named below, {LIMIT - len(held)} not tracked"
        ), out
        assert "the registry of holders says (not the server)" in out.splitlines()[1]
        assert_registry_view(out, held, console.thread_id(), leaks=2)

        out, err, code = scene.dbconnections("--format", "json")
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
    workers = scene.site.worker_pids()
    assert sorted(workers) == sorted(scene.workers.values())
    assert all(scene.entry(pid).exists() for pid in workers)
    assert scene.entry(scene.command.pid).exists()
    scene.command.stdin.close()  # the command returns
    assert scene.command.wait(timeout=30) == 0
    scene.site.stop()  # uWSGI's immediate shutdown; workers run atexit
    assert not scene.entry(scene.command.pid).exists()
    assert [pid for pid in workers if scene.entry(pid).exists()] == []
    assert sorted(p.name for p in scene.registry.iterdir()) == []
