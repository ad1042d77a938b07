"""The registry of holders (``pa_dbhealth.core.registry``) on a real file system, with real
processes: what is written, where, how privately, and what a reader trusts."""

from __future__ import annotations

import json
import logging
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pa_dbhealth.core import registry
from pa_dbhealth.core.registry.files import file_name
from pa_dbhealth.core.registry.process import start_ticks, this_host, this_process
from pa_dbhealth.core.vendors import AccountConnection

pytestmark = pytest.mark.matrix_once  # the same on every Django version

SERVER = registry.server_key("mysql", "127.0.0.1", 3306)


def held(conn_id: int = 25, **changes: Any) -> registry.HeldConnection:
    values: dict[str, Any] = {
        "server": SERVER,
        "account": "app",
        "vendor": "mysql",
        "id": conn_id,
        "name": "default",
        "thread": "MainThread",
        "opened_at": time.time() - 10,
        "last_used": time.time() - 5,
        "caller": "/srv/app/views.py:10 in index",
        "stack": None,
        "leak": None,
    }
    values.update(changes)
    return registry.HeldConnection(**values)


def row(conn_id: int, idle: int = 0) -> AccountConnection:
    return AccountConnection(
        id=conn_id, user="app", host="127.0.0.1:5000", db="app", command="Sleep",
        state="", seconds=idle, idle=True, this_connection=False,
    )  # fmt: skip


@pytest.fixture
def where(tmp_path: Path) -> Path:
    return tmp_path / "holders"


@pytest.fixture
def publisher() -> registry.Publisher:
    """A publisher of its own: the process-wide one belongs to the tracker."""
    return registry.Publisher()


def entry_file(where: Path, pid: int | None = None) -> Path:
    return where / file_name(this_host(), pid or os.getpid())


def write_entry(where: Path, data: dict[str, Any], name: str | None = None) -> Path:
    where.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = where / (name or file_name(data["host"], data["pid"]))
    path.write_text(json.dumps(data))
    return path


def entry(pid: int, host: str | None = None, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "format": 1,
        "host": host or this_host(),
        "pid": pid,
        "started": start_ticks(pid),
        "program": "python manage.py hold",
        "written_at": time.time(),
        "connections": [held().as_json()],
    }
    data.update(changes)
    return data


PUBLISHING = """
import sys, time
from pathlib import Path
from pa_dbhealth.core import registry
registry.publisher.publish(Path(sys.argv[1]), [registry.HeldConnection(
    server="127.0.0.1:3306", account="app", vendor="mysql", id=7, name="default",
    thread="MainThread", opened_at=time.time(), last_used=None, caller=None)])
print("written", flush=True)
if sys.argv[2:] == ["wait"]:
    sys.stdin.read()
"""


def publishing_process(where: Path, *args: str) -> subprocess.Popen[str]:
    """A process that publishes one connection to ``where`` and exits (or, with ``"wait"``,
    waits for its stdin to close)."""
    return subprocess.Popen(
        [sys.executable, "-c", PUBLISHING, str(where), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# --- writing ---


def test_what_is_written_reads_back(where: Path, publisher: registry.Publisher) -> None:
    leak = registry.Leak(registry.THREAD, "nothing closes it", "fresh_connections")
    written = [held(25), held(26, thread="poller", leak=leak, stack="  File x\n    y()")]
    assert publisher.publish(where, written)
    found = registry.read(where)
    assert found.problem is None
    (process,) = found.processes
    host, pid, started, program = this_process()
    assert (process.host, process.pid, process.started) == (host, pid, started)
    assert process.program == program and "python" in program
    assert process.connections == tuple(written)
    holders = found.holders(SERVER, "app")
    assert [h.connection.id for h in holders] == [25, 26]
    assert holders[1].as_dict()["probable_leak"] and holders[1].as_dict()["leak"] == {
        "kind": "thread",
        "why": "nothing closes it",
        "fix": "fresh_connections",
    }
    assert found.holders(SERVER, "someone_else") == []
    assert found.holders("elsewhere:3306", "app") == []


def test_directory_and_file_are_private(where: Path, publisher: registry.Publisher) -> None:
    os.umask(old := os.umask(0))  # the most permissive umask: the modes are the module's own
    try:
        assert publisher.publish(where, [held()])
    finally:
        os.umask(old)
    assert stat.S_IMODE(where.stat().st_mode) == 0o700
    assert stat.S_IMODE(entry_file(where).stat().st_mode) == 0o600
    assert [p.name for p in where.iterdir()] == [entry_file(where).name]  # no temporary left


def test_only_changes_are_written(where: Path, publisher: registry.Publisher) -> None:
    first = held()
    assert publisher.publish(where, [first])
    assert not publisher.publish(where, [first])  # nothing changed
    used_again = held(opened_at=first.opened_at, last_used=time.time())
    assert not publisher.publish(where, [used_again])  # last use alone: not yet
    assert publisher.publish(where, [first, held(26)])  # a new connection: at once
    assert publisher.publish(where, [])  # none left: the file goes
    assert not entry_file(where).exists()
    assert not publisher.publish(where, [])


def test_a_process_that_exits_removes_its_file(where: Path) -> None:
    proc = publishing_process(where)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert out.strip() == "written"
    assert not entry_file(where, proc.pid).exists()


def test_a_dead_process_entry_is_pruned_by_a_reader(where: Path) -> None:
    proc = publishing_process(where, "wait")
    assert proc.stdout is not None and proc.stdout.readline().strip() == "written"
    assert [p.pid for p in registry.read(where).processes] == [proc.pid]  # alive: kept
    proc.send_signal(signal.SIGKILL)  # no atexit: the file stays behind
    proc.communicate(timeout=10)
    assert entry_file(where, proc.pid).exists()
    assert registry.read(where).processes == ()
    assert not entry_file(where, proc.pid).exists()


def test_a_reused_pid_does_not_keep_a_dead_entry(where: Path) -> None:
    with subprocess.Popen(["sleep", "30"]) as other:  # alive, but not the writer
        try:
            write_entry(where, entry(other.pid, started=(start_ticks(other.pid) or 0) + 1))
            assert registry.read(where).processes == ()
            assert not entry_file(where, other.pid).exists()
        finally:
            other.kill()


def test_another_hosts_entry_goes_when_the_server_no_longer_lists_it(where: Path) -> None:
    old = time.time() - registry.ABSENT_AFTER - 5
    gone = write_entry(where, entry(111, host="web-elsewhere", written_at=old))
    young = write_entry(where, entry(112, host="web-other", written_at=time.time()))
    listed = write_entry(
        where,
        entry(113, host="web-third", written_at=old, connections=[held(40).as_json()]),
    )
    other_server = write_entry(
        where,
        entry(
            114, host="web-fourth", written_at=old, connections=[held(41, server="x:1").as_json()]
        ),
    )
    found = registry.read(where)  # a pid says nothing about another host: all kept
    assert sorted(p.pid for p in found.processes) == [111, 112, 113, 114]
    removed = registry.prune_absent(found, SERVER, "app", [40])
    assert [p.pid for p in removed] == [111]
    assert not gone.exists()
    assert young.exists() and listed.exists() and other_server.exists()


def test_join_matches_ids_the_server_lists() -> None:
    process = registry.ProcessEntry("f", "h", 1, None, "p", time.time(), ())
    holders = [
        registry.Holder(process, held(25)),
        registry.Holder(process, held(26, opened_at=time.time())),  # opened just now
    ]
    joined = registry.join([row(25, idle=3), row(26, idle=100), row(27)], holders)
    # 26 has been idle 100 s on the server: an entry opened a moment ago is not it.
    assert list(joined) == [25]


# --- a directory that is not private, or cannot be written ---


def test_a_symlink_in_place_of_the_file_is_replaced_not_followed(
    where: Path, publisher: registry.Publisher, tmp_path: Path
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    where.mkdir(mode=0o700)
    entry_file(where).symlink_to(victim)
    assert publisher.publish(where, [held()])
    assert victim.read_text() == "precious"
    assert not entry_file(where).is_symlink()
    assert registry.read(where).processes[0].pid == os.getpid()


def test_a_symlink_in_place_of_the_directory_is_refused(
    where: Path, publisher: registry.Publisher, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    where.symlink_to(elsewhere)
    with caplog.at_level(logging.DEBUG, logger="pa_dbhealth.registry"):
        assert not publisher.publish(where, [held()])
    assert list(elsewhere.iterdir()) == []
    assert "is a symlink" in caplog.text
    write_entry(elsewhere, entry(os.getpid()))
    found = registry.read(where)
    assert found.processes == () and found.problem and "symlink" in found.problem


def test_a_directory_others_can_enter_is_refused_and_left_alone(
    where: Path, publisher: registry.Publisher, caplog: pytest.LogCaptureFixture
) -> None:
    where.mkdir()
    where.chmod(0o755)
    with caplog.at_level(logging.DEBUG, logger="pa_dbhealth.registry"):
        assert not publisher.publish(where, [held()])
    assert "open to other users (mode 755)" in caplog.text
    assert stat.S_IMODE(where.stat().st_mode) == 0o755
    assert list(where.iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a directory to another user")
def test_a_directory_of_another_user_is_refused(
    where: Path, publisher: registry.Publisher, tmp_path: Path
) -> None:
    where.mkdir(mode=0o700)
    os.chown(where, 65534, 65534)  # nobody
    assert not publisher.publish(where, [held()])
    found = registry.read(where)
    assert found.problem and "belongs to user id 65534" in found.problem


def test_an_unwritable_place_costs_one_debug_line(
    tmp_path: Path, publisher: registry.Publisher, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    where = blocker / "holders"  # its parent is a file: nothing can be created there
    with caplog.at_level(logging.DEBUG, logger="pa_dbhealth.registry"):
        started = time.perf_counter()
        results = [publisher.publish(where, [held(n)]) for n in range(200)]
        elapsed = time.perf_counter() - started
    assert not any(results)
    assert len([r for r in caplog.records if "not written" in r.getMessage()]) == 1
    assert elapsed < 0.5  # not a single attempt after the first, until RETRY_AFTER
    assert registry.read(where).processes == ()


UNSHARE = """
import logging, os, subprocess, sys, time
from pathlib import Path
from pa_dbhealth.core import registry
where = Path(sys.argv[1])
logging.basicConfig(level=logging.DEBUG, stream=sys.stdout, format="%(message)s")
held = registry.HeldConnection(
    server="127.0.0.1:3306", account="app", vendor="mysql", id=7, name="default",
    thread="MainThread", opened_at=time.time(), last_used=None, caller=None)
results = [registry.publisher.publish(where, [held]) for _ in range(50)]
print("results", sorted(set(results)))
"""


@pytest.mark.parametrize("fault", ["read-only", "full"])
def test_a_read_only_or_full_disk_costs_one_debug_line(tmp_path: Path, fault: str) -> None:
    """A real read-only mount and a real full one, in a mount namespace of the test's own
    (``unshare``), so nothing outside this test sees them."""
    mount = tmp_path / "home"
    mount.mkdir()
    script = tmp_path / "publish.py"
    script.write_text(UNSHARE)
    where = mount / ".cache" / "holders"
    if fault == "read-only":
        setup = f"mount -t tmpfs -o ro,size=1m tmpfs {mount}"
    else:  # a tiny disk, filled up, with the registry's directory already made
        setup = (
            f"mount -t tmpfs -o size=64k tmpfs {mount} && mkdir -p -m 700 {where} && "
            f"(dd if=/dev/zero of={mount}/fill bs=4k 2>/dev/null || true)"
        )
    command = f"{setup} && exec {sys.executable} {script} {where}"
    unshare = ["unshare", "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        unshare.insert(1, "--map-root-user")
    try:
        done = subprocess.run(
            [*unshare, "sh", "-c", command], capture_output=True, text=True, timeout=60
        )
    except FileNotFoundError:
        pytest.skip("unshare is not installed")
    if "results" not in done.stdout:
        pytest.skip(f"cannot mount in a namespace of our own here: {done.stderr.strip()}")
    assert "results [False]" in done.stdout
    lines = [line for line in done.stdout.splitlines() if "not written" in line]
    assert len(lines) == 1, done.stdout
    expected = "Read-only file system" if fault == "read-only" else "No space left on device"
    assert expected in lines[0]


# --- reading defensively ---


def test_hostile_and_malformed_files_are_skipped(where: Path, tmp_path: Path) -> None:
    good = write_entry(where, entry(os.getpid()))
    pid = os.getpid()
    name = file_name(this_host(), pid + 1)  # names of processes that do not run are fine:
    hostile: dict[str, bytes] = {  # the file is skipped before its pid is looked at
        "not-json": b"{not json",
        "nan": json.dumps(entry(pid, written_at=float("nan"))).encode(),
        "huge": b"{" + b" " * (registry.MAX_BYTES + 1) + b"}",
        "deep": b"[" * 100_000 + b"]" * 100_000,
        "long-int": json.dumps(entry(pid))
        .replace(f'"pid": {pid}', '"pid": ' + "9" * 5000)
        .encode(),
        "wrong-type": json.dumps({**entry(pid), "pid": str(pid)}).encode(),
        "bool-pid": json.dumps({**entry(pid), "pid": True}).encode(),
        "no-list": json.dumps(entry(pid, connections={"a": 1})).encode(),
        "long-text": json.dumps(entry(pid, program="x" * 100_000)).encode(),
        "future": json.dumps(entry(pid, written_at=1e300)).encode(),
        "other-format": json.dumps(entry(pid, format=2)).encode(),
        "bad-connection": json.dumps(entry(pid, connections=[{"id": -1}])).encode(),
        "not-utf8": b'{"format": 1, "host": "\xff"}',
        "array": b"[1, 2, 3]",
    }
    for label, data in hostile.items():
        (where / f"{label}-{name}").write_bytes(data)
    (where / f"misnamed-{name}").write_text(json.dumps(entry(pid)))
    os.mkfifo(where / file_name("fifo", 1))  # opening it for reading must not block
    (where / file_name("dir", 2)).mkdir()
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps(entry(pid, host="linked")))
    (where / file_name("linked", pid)).symlink_to(outside)
    if os.geteuid() == 0:
        foreign = write_entry(where, entry(pid, host="foreign"))
        os.chown(foreign, 65534, 65534)
    started = time.monotonic()
    found = registry.read(where)
    assert time.monotonic() - started < 5
    assert [p.file for p in found.processes] == [good.name]


def test_control_characters_are_not_passed_on(where: Path) -> None:
    write_entry(
        where,
        entry(os.getpid(), program="evil\x1b[2J\x07", connections=[held(thread="t\rx").as_json()]),
    )
    (process,) = registry.read(where).processes
    assert process.program == "evil?[2J?"
    assert process.connections[0].thread == "t?x"


# --- where it is ---


def test_the_place(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(registry.ENVIRONMENT_VARIABLE, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert registry.directory(None) == tmp_path / ".cache" / "pa_dbhealth" / "holders"
    assert registry.directory("~/reg") == tmp_path / "reg"
    assert registry.directory(False) is None
    monkeypatch.setenv(registry.ENVIRONMENT_VARIABLE, "/srv/shared/holders")
    assert registry.directory(None) == Path("/srv/shared/holders")
    assert registry.directory("/elsewhere") == Path("/elsewhere")  # the setting wins
    monkeypatch.setenv(registry.ENVIRONMENT_VARIABLE, "off")
    assert registry.directory(None) is None


def test_server_keys_agree_across_spellings() -> None:
    assert registry.server_key("mysql", "", "") == "localhost:3306"
    assert registry.server_key("mysql", "DB.example.com", "3306") == "db.example.com:3306"
    assert registry.server_key("postgresql", "db", None) == "db:5432"
    assert registry.server_key("mysql", "/run/mysqld/mysqld.sock", "") == "/run/mysqld/mysqld.sock"


def test_secrets_on_the_command_line_are_not_published() -> None:
    code = "from pa_dbhealth.core.registry import process as p; print(p.this_process()[3])"
    secrets = ["--password=hunter2", "--api-key", "abc123", "mysql://app:pw4@db/app"]
    done = subprocess.run(
        [sys.executable, "-c", code, *secrets], capture_output=True, text=True, timeout=30
    )
    program = done.stdout.strip()
    assert program.startswith("python -c from pa_dbhealth")
    assert program.endswith("--password=*** --api-key *** mysql://app:***@db/app")
    assert "hunter2" not in program and "abc123" not in program and "pw4" not in program


def test_after_a_failure_another_place_is_tried_at_once(
    tmp_path: Path, where: Path, publisher: registry.Publisher
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert not publisher.publish(blocker / "holders", [held()])
    assert publisher.publish(where, [held()])  # REGISTRY_DIR changed: no waiting
    assert entry_file(where).exists()


def test_two_faces_in_one_process_each_keep_their_own_list(
    where: Path, publisher: registry.Publisher
) -> None:
    assert publisher.publish(where, [held(25)], source="django")
    assert publisher.publish(where, [held(30, name="engine")], source="sqlalchemy")
    (process,) = registry.read(where).processes
    assert sorted(c.id for c in process.connections) == [25, 30]
    assert publisher.publish(where, [], source="django")
    (process,) = registry.read(where).processes
    assert [c.id for c in process.connections] == [30]
    assert publisher.publish(where, [], source="sqlalchemy")
    assert not entry_file(where).exists()
