"""The tests' own real processes: the test site under uWSGI, manage.py, python -c."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from processes import Processes, run

from pa_dbhealth.sandbox import SandboxInfo

pytestmark = pytest.mark.matrix_once  # the same on every Django version

TOKEN = "a-health-token-for-the-tests"


def session_members(session: int) -> list[int]:
    """Pids of the live (not zombie) processes in ``session``."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[3]) == session and fields[0] not in ("Z", "X"):
            members.append(int(stat.parent.name))
    return members


def test_uwsgi_serves_the_test_site_with_the_suites_databases(
    processes: Processes, server: SandboxInfo
) -> None:
    site = processes.uwsgi(
        processes=2, threads=2, settings={"PA_DBHEALTH": {"HEALTH_TOKEN": TOKEN}}
    )
    assert site.get("/workers/") == (200, "4|uWSGI (2 processes x 2 threads)")
    status, body = site.get("/health/default/", {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200, body
    report = json.loads(body)["databases"]["default"]  # the full body: the token was set
    assert report["connections"]["limit"] == server.limit
    assert site.err.count("spawned uWSGI worker") == 2
    assert len(session_members(site.pid)) == 3  # the master and its two workers

    stopped = site.stop()
    assert stopped.returncode == 0, site.log()
    assert "goodbye to uWSGI" in stopped.err
    assert session_members(site.pid) == []


def test_a_site_that_does_not_start_fails_the_test_with_its_log(processes: Processes) -> None:
    with pytest.raises(AssertionError) as failed:
        processes.uwsgi(settings={"INSTALLED_APPS": ["no_such_app"]})
    assert "exited first" in str(failed.value)
    assert "No module named 'no_such_app'" in str(failed.value)
    (site,) = processes.started
    assert session_members(site.pid) == []
    assert "no_such_app" in processes.logs()


def test_manage_and_python_run_the_test_site_with_the_suites_databases(
    processes: Processes, server: SandboxInfo
) -> None:
    out, err, code = processes.manage("dbconnections", "--format", "json")
    assert code == 0, err
    assert json.loads(out)["databases"]["default"]["limit"] == server.limit
    out, err, code = processes.python(
        "from django.conf import settings\n"
        "from django.db import connection\n"
        "with connection.cursor() as cursor:\n"
        "    cursor.execute('SELECT CURRENT_USER(), @@port')\n"
        "    print(*cursor.fetchone(), settings.PA_DBHEALTH['WORKERS'])\n",
        settings={"PA_DBHEALTH": {"WORKERS": 2}},
    )
    assert code == 0, err
    assert out.split() == ["app@%", str(server.port), "2"]
    assert processes.python("raise SystemExit(3)").returncode == 3


def test_nothing_is_left_running(tmp_path: Path) -> None:
    started = Processes(tmp_path)
    # Ignores Ctrl-C and leaves a child behind: both are killed.
    stubborn = started.spawn(
        [
            sys.executable,
            "-c",
            "import signal, subprocess, time\n"
            "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
            "subprocess.Popen(['sleep', '60'])\n"
            "print('ready', flush=True)\n"
            "time.sleep(60)\n",
        ]
    )
    stubborn.wait_for(lambda text: "ready" in text)
    assert len(session_members(stubborn.pid)) == 2
    stubborn.stop(timeout=0.5)
    assert session_members(stubborn.pid) == []

    # A child that outlives the timeout: the run fails, and neither is left.
    sleeper = (
        "import os, subprocess; print(os.getpid(), flush=True); subprocess.run(['sleep', '60'])"
    )
    with pytest.raises(AssertionError, match=r"did not finish within 0\.5 s") as failed:
        run([sys.executable, "-c", sleeper], timeout=0.5)
    session = int(str(failed.value).splitlines()[1])
    assert session_members(session) == []
