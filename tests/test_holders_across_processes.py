"""Who holds the connections, across real processes: a uWSGI site with 2 workers and
persistent connections, a management command holding one in a thread of its own, and a
script that opens one at import, all against a capped server of their own. ``dbconnections``
(a process of its own too) names each one's pid, program and the line that opened it, and
still does with the cap full, from the registry alone."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
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


@dataclass
class Scene:
    server: sandbox.SandboxInfo
    project: Project
    registry: Path
    site: Site
    workers: dict[int, int]  # connection id -> worker pid
    command: Any  # subprocess.Popen
    command_id: int
    script: Any
    script_id: int

    def entry(self, pid: int) -> Path:
        return self.registry / file_name(this_host(), pid)


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


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    binary = uwsgi_binary()
    if binary is None:
        pytest.skip("uWSGI is not installed (pip install uwsgi)")
    base = tmp_path_factory.mktemp("holders")
    server = sandbox.start(base / "db", limit=LIMIT)
    registry = base / "registry" / "holders"
    project = make_project(base / "project", server, registry, CONNECT_RETRY=CONNECT_RETRY)
    site = Site(project, binary, processes=2)
    started = []
    try:
        site.wait_ready()
        workers = hold_both_workers(site)
        command = project.manage("hold_in_thread")
        started.append(command)
        command_id = int(wait_for_line(command, "holding ").split()[1])
        script = project.script("script.py")
        started.append(script)
        script_id = int(wait_for_line(script, "holding ").split()[1])
        yield Scene(
            server, project, registry, site, workers, command, command_id, script, script_id
        )
    finally:
        for proc in started:
            stop(proc)
        site.stop()
        sandbox.stop(server)


def listing(scene: Scene) -> dict[str, Any]:
    out, err, code = scene.project.run("dbconnections", "--format", "json")
    assert code == 0, err
    result: dict[str, Any] = json.loads(out)["databases"]["default"]
    return result


def test_dbconnections_names_each_process_its_program_and_the_line_that_opened_it(
    scene: Scene,
) -> None:
    result = listing(scene)
    rows = {row["id"]: row for row in result["connections"]}
    assert len(rows) == LIMIT  # the four holders and the command's own look
    for connection_id, pid in scene.workers.items():
        holder = rows[connection_id]["holder"]
        assert holder["pid"] == pid
        assert holder["host"] == this_host()
        assert "uwsgi" in holder["program"] and "(uWSGI worker " in holder["program"]
        assert holder["thread"].startswith("uWSGIWorker")  # uWSGI names its threads
        assert "holders_site/urls.py:" in holder["origin"] and holder["origin"].endswith(" in hold")
        assert holder["probable_leak"] is False and holder["leak"] is None

    holder = rows[scene.command_id]["holder"]
    assert holder["pid"] == scene.command.pid
    assert holder["program"].endswith("-m django hold_in_thread")
    assert holder["thread"] == "poller"
    assert "hold_in_thread.py:" in holder["origin"] and holder["origin"].endswith(" in poll")
    assert holder["probable_leak"] is True and holder["leak"]["kind"] == "thread"
    assert "fresh_connections" in holder["leak"]["fix"]

    holder = rows[scene.script_id]["holder"]
    assert holder["pid"] == scene.script.pid
    assert holder["program"].endswith("script.py")
    assert "leaky.py:3 in <module>" in holder["origin"]
    assert holder["probable_leak"] is True and holder["leak"]["kind"] == "import"
    assert "open it inside the function" in holder["leak"]["fix"]

    (own,) = [row for row in rows.values() if row["this_connection"]]
    assert own["holder"] is None


def test_with_the_cap_full_the_same_are_named_without_a_connection(scene: Scene) -> None:
    held = dict(scene.workers)
    held[scene.command_id] = scene.command.pid
    held[scene.script_id] = scene.script.pid
    console = scene.server.connect()  # the fifth: a console without pa_dbhealth
    try:
        started = time.monotonic()
        proc = scene.project.manage("dbconnections")
        seen: list[tuple[float, str]] = []
        reader = threading.Thread(
            target=lambda: seen.extend((time.monotonic(), line) for line in proc.stdout)
        )
        reader.start()
        proc.wait(timeout=60)
        reader.join(10)
        _, err = proc.communicate(timeout=10)
        finished = time.monotonic()
        assert proc.returncode == 0, err
        assert "gave up" not in err
        text = "".join(line for _, line in seen)
        assert seen[0][1].startswith(
            f"default: {LIMIT} of {LIMIT} in use (the server refused this look: 1226): "
            f"{len(held)} named below, {LIMIT - len(held)} not tracked"
        ), seen[0][1]
        assert finished - started < CONNECT_RETRY  # at once: a look never waits at the cap
        assert_registry_view(text, held, console.thread_id(), leaks=2)

        out, err, code = scene.project.run("dbconnections", "--format", "json")
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
    scene.site.stop()
    assert not scene.entry(scene.command.pid).exists()
    assert [pid for pid in workers if scene.entry(pid).exists()] == []
    assert sorted(p.name for p in scene.registry.iterdir()) == []
