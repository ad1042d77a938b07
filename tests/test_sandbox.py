"""The local capped server as a user meets it: ``python -m pa_dbhealth.sandbox``."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pa_dbhealth import sandbox


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pa_dbhealth.sandbox", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def test_start_env_status_stop(tmp_path: Path) -> None:
    folder = str(tmp_path / "sbx")
    started = run("--dir", folder, "start", "--wait-timeout", "4")
    assert started.returncode == 0, started.stderr
    assert "capped at 3 connections, wait_timeout=4s" in started.stderr
    exports = dict(
        line.removeprefix("export ").split("=", 1) for line in started.stdout.splitlines()
    )
    assert exports["DB_ENGINE"] == "django.db.backends.mysql"
    info = sandbox.SandboxInfo.load(folder)
    try:
        assert exports["DB_PORT"] == str(info.port)
        env = run("--dir", folder, "env", "--format", "json")
        assert env.returncode == 0 and f'"DB_PORT": "{info.port}"' in env.stdout
        status = run("--dir", folder, "status")
        assert status.returncode == 0 and status.stdout.startswith("running:")
        again = run("--dir", folder, "start")
        assert again.returncode == 2
        assert again.stderr.strip() == (
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
    assert stopped.returncode == 0, stopped.stderr
    assert not info.is_running()
    assert not Path(folder).exists()


def test_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run("--dir", str(tmp_path), "start", "--port", str(port))
    assert result.returncode == 2
    assert result.stderr.strip() == (
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
    result = subprocess.run(
        [sys.executable, "-c", code, "--dir", str(tmp_path), "start"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "sudo apt-get install mariadb-server" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_env_without_a_sandbox(tmp_path: Path) -> None:
    result = run("--dir", str(tmp_path / "none"), "env")
    assert result.returncode == 2
    assert "no sandbox in" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args", [["start", "--port", "abc"], ["start", "--wait-timeout", "0"], ["frobnicate"]]
)
def test_bad_arguments_are_usage_errors(args: list[str], tmp_path: Path) -> None:
    result = run("--dir", str(tmp_path), *args)
    assert result.returncode == 2
    assert "usage:" in result.stderr and "Traceback" not in result.stderr


def test_python_api_rejects_bad_values(tmp_path: Path) -> None:
    with pytest.raises(sandbox.SandboxError, match="wait_timeout must be a whole number >= 1"):
        sandbox.start(tmp_path, wait_timeout=0)
    with pytest.raises(sandbox.SandboxError, match="database must be"):
        sandbox.start(tmp_path, database="a;b")


def test_the_suite_server_is_capped(server: Any) -> None:
    assert server.limit == 3 and server.wait_timeout == 300 and server.is_running()


def test_a_pid_that_is_no_longer_the_server_is_neither_reported_nor_signalled(
    tmp_path: Path, server: sandbox.SandboxInfo
) -> None:
    folder = tmp_path / "sbx"
    (folder / "data").mkdir(parents=True)
    sleeper = subprocess.Popen(["sleep", "60"])
    # A process with the sandbox's --datadir among its arguments, but no server.
    lookalike = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", f"--datadir={folder / 'data'}"]
    )
    try:
        # The pid reused by any process, by a look-alike, and by another sandbox's server.
        for pid in (sleeper.pid, lookalike.pid, server.pid):
            replace(server, base_dir=str(folder), pid=pid).save()
            status = run("--dir", str(folder), "status")
            assert status.returncode == 1, status.stdout
            assert status.stdout.startswith("stopped: ")
            assert f"pid {pid}" not in status.stdout
            env = run("--dir", str(folder), "env")
            assert env.returncode == 2 and "is not running" in env.stderr
            stopped = run("--dir", str(folder), "stop", "--keep")
            assert stopped.returncode == 0, stopped.stderr
        assert sleeper.poll() is None and lookalike.poll() is None
        assert server.is_running()
        server.connect(admin=True).close()
    finally:
        for proc in (sleeper, lookalike):
            proc.kill()
            proc.wait()


def test_start_prints_its_hints_with_the_same_dir(tmp_path: Path) -> None:
    folder = str(tmp_path / "it's;$sbx")
    started = run("--dir", folder, "start")
    try:
        assert started.returncode == 0, started.stderr
        quoted = shlex.quote(folder)
        assert f'eval "$(python -m pa_dbhealth.sandbox --dir {quoted} env)"' in started.stderr
        assert f"python -m pa_dbhealth.sandbox --dir {quoted} stop" in started.stderr
        # The hint, run by a shell, loads this sandbox's settings.
        hint = next(line for line in started.stderr.splitlines() if "eval" in line)
        command = hint.split("eval ", 1)[1].replace("python", shlex.quote(sys.executable), 1)
        shell = subprocess.run(
            ["bash", "-c", f"eval {command} && echo $DB_PORT"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert shell.stdout.strip() == str(sandbox.SandboxInfo.load(folder).port), shell.stderr
    finally:
        run("--dir", folder, "stop")


def test_a_folder_with_spaces_is_one_clear_line(tmp_path: Path) -> None:
    if sandbox.find_binaries()[2] != "MariaDB":
        pytest.skip("only mariadb-install-db fails on spaces")
    folder = tmp_path / "my projects"
    result = run("--dir", str(folder), "start")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"pa_dbhealth.sandbox: error: mariadb-install-db cannot initialise a folder whose path "
        f"has spaces ({folder}): choose another with --dir"
    )
