"""The local capped server as a user meets it: ``python -m pa_dbhealth.sandbox``."""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import MySQLdb
import pytest
from faults import frozen, kill_server
from processes import Finished, Processes
from processes import run as run_process

from pa_dbhealth import sandbox
from pa_dbhealth.core.errors import Kind, classify

pytestmark = pytest.mark.matrix_once  # the same on every Django version


def run(*args: str) -> Finished:
    return run_process([sys.executable, "-m", "pa_dbhealth.sandbox", *args])


def test_start_env_status_stop(tmp_path: Path) -> None:
    folder = str(tmp_path / "sbx")
    started = run("--dir", folder, "start", "--wait-timeout", "4")
    assert started.returncode == 0, started.err
    assert "capped at 3 connections, wait_timeout=4s" in started.err
    exports = dict(line.removeprefix("export ").split("=", 1) for line in started.out.splitlines())
    assert "DB_ENGINE" not in exports  # the site chooses its backend, not the server
    info = sandbox.SandboxInfo.load(folder)
    try:
        assert exports["DB_PORT"] == str(info.port)
        env = run("--dir", folder, "env", "--format", "json")
        assert env.returncode == 0 and f'"DB_PORT": "{info.port}"' in env.out
        status = run("--dir", folder, "status")
        assert status.returncode == 0 and status.out.startswith("running:")
        again = run("--dir", folder, "start")
        assert again.returncode == 2
        assert again.err.strip() == (
            f"pa_dbhealth.sandbox: error: a sandbox is already running in {folder} "
            f"on port {info.port} (pid {info.pid})"
        )
        conn = info.connect()
        cursor = conn.cursor()
        cursor.execute("SELECT @@session.wait_timeout, @@session.max_user_connections")
        assert cursor.fetchone() == (4, 3)
        conn.close()
    finally:
        stopped = run("--dir", folder, "stop")
    assert stopped.returncode == 0, stopped.err
    assert not info.is_running()
    assert not Path(folder).exists()


def test_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run("--dir", str(tmp_path), "start", "--port", str(port))
    assert result.returncode == 2
    assert result.err.strip() == (
        f"pa_dbhealth.sandbox: error: port {port} on 127.0.0.1 is in use: "
        "choose another with --port, or leave it out"
    )


def test_missing_binaries_say_what_to_install(tmp_path: Path) -> None:
    # A PATH and search list without any server binary, as on a machine without them.
    code = (
        "import sys, pa_dbhealth.sandbox.process as s; s.SEARCH_DIRS = (); "
        "from pa_dbhealth.sandbox.__main__ import main; sys.exit(main(sys.argv[1:]))"
    )
    env = {**os.environ, "PATH": str(tmp_path)}
    result = run_process([sys.executable, "-c", code, "--dir", str(tmp_path), "start"], env=env)
    assert result.returncode == 2
    assert "Traceback" not in result.err
    assert "sudo apt-get install mariadb-server" in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_env_without_a_sandbox(tmp_path: Path) -> None:
    result = run("--dir", str(tmp_path / "none"), "env")
    assert result.returncode == 2
    assert "no sandbox in" in result.err and "Traceback" not in result.err


@pytest.mark.parametrize(
    "args", [["start", "--port", "abc"], ["start", "--wait-timeout", "0"], ["frobnicate"]]
)
def test_bad_arguments_are_usage_errors(args: list[str], tmp_path: Path) -> None:
    result = run("--dir", str(tmp_path), *args)
    assert result.returncode == 2
    assert "usage:" in result.err and "Traceback" not in result.err


def test_python_api_rejects_bad_values(tmp_path: Path) -> None:
    with pytest.raises(sandbox.SandboxError, match="wait_timeout must be a whole number >= 1"):
        sandbox.start(tmp_path, wait_timeout=0)
    with pytest.raises(sandbox.SandboxError, match="database must be"):
        sandbox.start(tmp_path, database="a;b")


def test_the_suite_server_is_capped(server: Any) -> None:
    assert server.limit == 3 and server.wait_timeout == 300 and server.is_running()


def test_a_pid_that_is_no_longer_the_server_is_neither_reported_nor_signalled(
    tmp_path: Path, server: sandbox.SandboxInfo, processes: Processes
) -> None:
    folder = tmp_path / "sbx"
    (folder / "data").mkdir(parents=True)
    sleeper = processes.spawn(["sleep", "60"])
    # A process with the sandbox's --datadir among its arguments, but no server.
    lookalike = processes.spawn(
        [sys.executable, "-c", "import time; time.sleep(60)", f"--datadir={folder / 'data'}"]
    )
    # The pid reused by any process, by a look-alike, and by another sandbox's server.
    for pid in (sleeper.pid, lookalike.pid, server.pid):
        replace(server, base_dir=str(folder), pid=pid).save()
        status = run("--dir", str(folder), "status")
        assert status.returncode == 1, status.out
        assert status.out.startswith("stopped: ")
        assert f"pid {pid}" not in status.out
        env = run("--dir", str(folder), "env")
        assert env.returncode == 2 and "is not running" in env.err
        stopped = run("--dir", str(folder), "stop", "--keep")
        assert stopped.returncode == 0, stopped.err
    assert sleeper.proc.poll() is None and lookalike.proc.poll() is None
    assert server.is_running()
    server.connect(admin=True).close()


def test_start_prints_its_hints_with_the_same_dir(tmp_path: Path) -> None:
    folder = str(tmp_path / "it's;$sbx")
    started = run("--dir", folder, "start")
    try:
        assert started.returncode == 0, started.err
        quoted = shlex.quote(folder)
        assert f'eval "$(python -m pa_dbhealth.sandbox --dir {quoted} env)"' in started.err
        assert f"python -m pa_dbhealth.sandbox --dir {quoted} stop" in started.err
        # The hint, run by a shell, loads this sandbox's settings.
        hint = next(line for line in started.err.splitlines() if "eval" in line)
        command = hint.split("eval ", 1)[1].replace("python", shlex.quote(sys.executable), 1)
        shell = run_process(["bash", "-c", f"eval {command} && echo $DB_PORT"])
        assert shell.out.strip() == str(sandbox.SandboxInfo.load(folder).port), shell.err
    finally:
        run("--dir", folder, "stop")


def test_a_folder_with_spaces_is_one_clear_line(tmp_path: Path) -> None:
    if sandbox.find_binaries()[2] != "MariaDB":
        pytest.skip("only mariadb-install-db fails on spaces")
    folder = tmp_path / "my projects"
    result = run("--dir", str(folder), "start")
    assert result.returncode == 2
    assert result.err.strip() == (
        f"pa_dbhealth.sandbox: error: mariadb-install-db cannot initialise a folder whose path "
        f"has spaces ({folder}): choose another with --dir"
    )


def test_stop_keep_then_start_resumes_the_same_server(tmp_path: Path) -> None:
    folder = str(tmp_path / "sbx")
    assert run("--dir", folder, "start", "--wait-timeout", "4").returncode == 0
    first = sandbox.SandboxInfo.load(folder)
    try:
        conn = first.connect()
        conn.cursor().execute("CREATE TABLE kept (n INT)")
        conn.cursor().execute("INSERT INTO kept VALUES (42)")
        conn.commit()
        conn.close()
        kept = run("--dir", folder, "stop", "--keep")
        assert kept.returncode == 0 and "resumes it" in kept.err
        assert not first.is_running() and Path(folder, "data").is_dir()
        assert run("--dir", folder, "status").out.startswith("stopped: ")

        resumed = run("--dir", folder, "start")
        assert resumed.returncode == 0, resumed.err
        assert "# resumed the kept server in " in resumed.err
        second = sandbox.SandboxInfo.load(folder)
        assert second.is_running() and second.pid != first.pid
        assert replace(second, pid=first.pid) == first  # port, passwords, timeouts: the same
        conn = second.connect()
        cursor = conn.cursor()
        cursor.execute("SELECT n, @@session.wait_timeout FROM kept")
        assert cursor.fetchall() == ((42, 4),)
        conn.close()

        # Its port taken meanwhile: a free one, and it says so.
        assert run("--dir", folder, "stop", "--keep").returncode == 0
        with socket.socket() as busy:
            busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past a TIME_WAIT
            busy.bind(("127.0.0.1", second.port))
            busy.listen()
            moved = run("--dir", folder, "start", "--limit", "2")
        assert moved.returncode == 0, moved.err
        third = sandbox.SandboxInfo.load(folder)
        assert third.port != second.port
        assert (
            f"# port {second.port} is in use now: the resumed server listens on port "
            f"{third.port} instead"
        ) in moved.err
        assert (third.password, third.limit, third.wait_timeout) == (first.password, 2, 4)
        conn = third.connect()
        cursor = conn.cursor()
        cursor.execute("SELECT n, @@session.max_user_connections FROM kept")
        assert cursor.fetchall() == ((42, 2),)
        conn.close()

        # --fresh wipes it.
        assert run("--dir", folder, "stop", "--keep").returncode == 0
        fresh = run("--dir", folder, "start", "--fresh")
        assert fresh.returncode == 0, fresh.err
        assert "resumed" not in fresh.err
        fourth = sandbox.SandboxInfo.load(folder)
        assert fourth.password != first.password
        assert (fourth.wait_timeout, fourth.limit) == (300, 3)
        conn = fourth.connect()
        with pytest.raises(MySQLdb.ProgrammingError) as gone:
            conn.cursor().execute("SELECT n FROM kept")
        assert gone.value.args[0] == 1146  # no such table
        conn.close()
    finally:
        run("--dir", folder, "stop")
    assert not Path(folder).exists()


def test_a_kept_sandbox_without_its_data_is_not_restarted_from_scratch(
    tmp_path: Path, server: sandbox.SandboxInfo
) -> None:
    folder = tmp_path / "sbx"
    folder.mkdir()
    replace(server, base_dir=str(folder), pid=0).save()
    result = run("--dir", str(folder), "start")
    assert result.returncode == 2
    assert result.err.strip() == (
        f"pa_dbhealth.sandbox: error: the sandbox in {folder} has lost its data "
        f"({folder / 'data'} is missing): start a new one with --fresh"
    )
    assert sandbox.SandboxInfo.load(folder).password == server.password  # nothing wiped


def test_a_server_that_cannot_start_names_the_cause(tmp_path: Path) -> None:
    folder = tmp_path / "sbx"
    assert run("--dir", str(folder), "start").returncode == 0
    assert run("--dir", str(folder), "stop", "--keep").returncode == 0
    shutil.rmtree(folder / "data" / "mysql")  # the privilege tables, gone
    try:
        result = run("--dir", str(folder), "start")
        assert result.returncode == 2
        (line,) = result.err.strip().splitlines()
        assert line.startswith("pa_dbhealth.sandbox: error: the server exited at start (exit 1): ")
        assert "[ERROR] " in line and "[ERROR] Aborting" not in line  # the cause, not the end
    finally:
        run("--dir", str(folder), "stop")


def test_restart_after_kill_9_brings_it_back_where_clients_expect_it(
    spare_server: sandbox.SandboxInfo,
) -> None:
    info = spare_server
    before = sandbox.SandboxInfo.load(info.base_dir)
    conn = info.connect()
    conn.autocommit(True)
    cursor = conn.cursor()
    cursor.execute("CREATE TABLE survived (n INT)")
    cursor.execute("INSERT INTO survived VALUES (7)")

    kill_server(info)
    with pytest.raises(MySQLdb.OperationalError) as lost:
        cursor.execute("SELECT 1")
    assert classify(lost.value).kind is Kind.LOST
    with pytest.raises(MySQLdb.OperationalError) as refused:
        info.connect()
    assert classify(refused.value).kind is Kind.UNREACHABLE

    assert sandbox.restart(info) is info
    assert info.is_running() and info.pid != before.pid
    assert replace(info, pid=before.pid) == before  # same port, accounts, settings
    assert sandbox.SandboxInfo.load(info.base_dir) == info
    again = info.connect()
    cursor = again.cursor()
    cursor.execute("SELECT n FROM survived")
    assert cursor.fetchall() == ((7,),)
    again.close()


def test_restart_refuses_a_port_taken_meanwhile(spare_server: sandbox.SandboxInfo) -> None:
    kill_server(spare_server)
    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past a TIME_WAIT
        busy.bind(("127.0.0.1", spare_server.port))
        busy.listen()
        with pytest.raises(sandbox.SandboxError) as refused:
            sandbox.restart(spare_server)
    assert str(refused.value) == (
        f"cannot restart the sandbox in {spare_server.base_dir} on port {spare_server.port}: "
        "the port is in use now"
    )


def test_a_frozen_server_answers_nothing_until_it_is_thawed(
    spare_server: sandbox.SandboxInfo,
) -> None:
    conn = spare_server.connect(read_timeout=1)
    with frozen(spare_server):
        with pytest.raises(MySQLdb.OperationalError) as silent:
            conn.cursor().execute("SELECT 1")
        assert classify(silent.value).kind is Kind.LOST
        assert spare_server.is_running()  # stopped, not gone
    again = spare_server.connect(read_timeout=5)
    cursor = again.cursor()
    cursor.execute("SELECT 1")
    assert cursor.fetchone() == (1,)
    again.close()


def test_the_default_folder_without_user_is_the_documented_one() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("USER", "TMPDIR", "TEMP", "TMP")}
    env["COLUMNS"] = "200"
    out, err, code = run_process([sys.executable, "-m", "pa_dbhealth.sandbox", "--help"], env=env)
    assert code == 0, err
    folder = f"/tmp/pa_dbhealth-sandbox-{os.getuid()}"
    assert f"(default: {folder})" in out
    docs = (Path(__file__).resolve().parent.parent / "docs" / "sandbox.md").read_text()
    documented = " ".join(docs.split())  # the doc's lines joined
    assert "Where `$USER` is unset (cron, systemd, a container) the numeric user id" in documented
    assert "`/tmp/pa_dbhealth-sandbox-0` for root" in documented
