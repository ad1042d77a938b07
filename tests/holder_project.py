"""A small Django project of its own in a temporary folder, for the registry's tests: an
app with a command that holds a connection in a thread and a script that opens one at
import, served by uWSGI with several workers or run as a command or a plain script.

Everything it starts is stopped by its own pid (uWSGI in a session of its own, so its
workers go with it). The suite's general harness is ``processes.py``; this one exists for
the project layout those tests need.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pa_dbhealth import sandbox

TESTS = Path(__file__).resolve().parent

SETTINGS = """
from testsite.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "holders_app"]  # noqa: F405
ROOT_URLCONF = "holders_site.urls"
DATABASES = {{"default": {database!r}}}
PA_DBHEALTH = {options!r}
LOGGING = {{"version": 1, "disable_existing_loggers": False}}
"""

URLS = """
import os

from django.db import connections
from django.http import HttpRequest, HttpResponse
from django.urls import path


def hold(request: HttpRequest) -> HttpResponse:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT CONNECTION_ID(), SLEEP(%s)", [float(request.GET.get("s", 0))])
        connection_id = cursor.fetchone()[0]
    return HttpResponse(f"{os.getpid()} {connection_id}")


urlpatterns = [path("hold/", hold)]
"""

WSGI = """
from django.core.wsgi import get_wsgi_application

application = get_wsgi_application()
"""

# A management command that holds a connection in a thread of its own until stdin closes.
HOLD_IN_THREAD = """
import sys
import threading

from django.core.management.base import BaseCommand
from django.db import connections


class Command(BaseCommand):
    def handle(self, **options):
        opened = threading.Event()
        found = []

        def poll():
            with connections["default"].cursor() as cursor:
                cursor.execute("SELECT CONNECTION_ID()")
                found.append(cursor.fetchone()[0])
            opened.set()
            threading.Event().wait()  # holds it, as a forgotten poller does

        threading.Thread(target=poll, name="poller", daemon=True).start()
        opened.wait(30)
        self.stdout.write(f"holding {found[0]}")
        self.stdout.flush()
        sys.stdin.read()
"""

# A module that queries at import time, and a script that imports it.
LEAKY = """
from django.db import connections

with connections["default"].cursor() as cursor:
    cursor.execute("SELECT CONNECTION_ID()")
    CONNECTION_ID = cursor.fetchone()[0]
"""

SCRIPT = """
import sys

import django

django.setup()

import leaky  # noqa: E402

print(f"holding {leaky.CONNECTION_ID}", flush=True)
sys.stdin.read()
"""

FILES = {
    "holders_site/__init__.py": "",
    "holders_site/urls.py": URLS,
    "holders_site/wsgi.py": WSGI,
    "holders_app/__init__.py": "",
    "holders_app/management/__init__.py": "",
    "holders_app/management/commands/__init__.py": "",
    "holders_app/management/commands/hold_in_thread.py": HOLD_IN_THREAD,
    "leaky.py": LEAKY,
    "script.py": SCRIPT,
}


def uwsgi_binary() -> str | None:
    """uWSGI from PyPI, next to this Python (Debian's uwsgi-core lacks the Python plugin)."""
    binary = Path(sys.executable).parent / "uwsgi"
    return str(binary) if binary.exists() else None


@dataclass
class Project:
    root: Path
    env: dict[str, str]

    def popen(self, *args: str, session: bool = False) -> subprocess.Popen[str]:
        return subprocess.Popen(
            list(args),
            cwd=self.root,
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=session,
        )

    def manage(self, *args: str) -> subprocess.Popen[str]:
        return self.popen(sys.executable, "-m", "django", *args)

    def script(self, name: str) -> subprocess.Popen[str]:
        return self.popen(sys.executable, name)

    def run(self, *args: str, timeout: float = 60) -> tuple[str, str, int]:
        """A management command to its end: ``(stdout, stderr, exit code)``."""
        done = subprocess.run(
            [sys.executable, "-m", "django", *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return done.stdout, done.stderr, done.returncode


def make_project(
    root: Path, server: sandbox.SandboxInfo, registry: Path, **options: Any
) -> Project:
    """The project's files in ``root``, for the capped account of ``server``, with
    ``CONN_MAX_AGE = 60``; every process started from it writes to ``registry``."""
    for name, text in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    database = {**server.database_settings(), "CONN_MAX_AGE": 60}
    (root / "holders_site" / "settings.py").write_text(
        SETTINGS.format(database=database, options=options)
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), str(TESTS)]),
        "DJANGO_SETTINGS_MODULE": "holders_site.settings",
        "PA_DBHEALTH_REGISTRY_DIR": str(registry),
    }
    return Project(root, env)


class Site:
    """The project under uWSGI: a master and ``processes`` single-threaded workers serving
    ``module`` (the Django project's, or another app's with a ``/hold/`` view)."""

    def __init__(
        self,
        project: Project,
        binary: str,
        processes: int = 2,
        module: str = "holders_site.wsgi:application",
    ) -> None:
        self.port = sandbox.free_port()
        self.log = project.root / "uwsgi.log"
        self.proc = project.popen(
            binary,
            "--master",
            "--need-app",
            "--die-on-term",
            f"--http-socket=127.0.0.1:{self.port}",
            f"--processes={processes}",
            f"--home={sys.prefix}",
            f"--pythonpath={project.root}",
            f"--pythonpath={TESTS}",
            f"--module={module}",
            f"--logto={self.log}",
            session=True,
        )

    def get(self, path: str, timeout: float = 30) -> str:
        url = f"http://127.0.0.1:{self.port}{path}"
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return str(response.read().decode())

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.get("/hold/", timeout=5)
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    log = self.log.read_text() if self.log.exists() else ""
                    raise AssertionError(f"uWSGI did not start:\n{log[-3000:]}") from None
                time.sleep(0.2)

    def worker_pids(self) -> list[int]:
        """The workers' pids (the master's children)."""
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(pid) for pid in children.read_text().split()]

    def stop(self) -> None:
        stop(self.proc, signal.SIGINT)  # uWSGI's immediate shutdown; workers run atexit


def wait_for_line(proc: subprocess.Popen[str], prefix: str, timeout: float = 60) -> str:
    """The first line of ``proc``'s output that starts with ``prefix``."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith(prefix):
            return line.strip()
        if not line and proc.poll() is not None:
            break
    err = proc.stderr.read() if proc.stderr and proc.poll() is not None else ""
    raise AssertionError(f"no line {prefix!r} from {proc.args!r}: {err[-2000:]}")


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM, timeout: float = 15) -> None:
    """Stop a process this module started, by its pid; SIGKILL if it does not go."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


# --- what both faces' registry tests assert ------------------------------------------------


def assert_registry_view(text: str, held: dict[int, int], untracked: int, leaks: int) -> None:
    """``text`` is a listing's registry view (the cap full): each held id named with its
    pid on this host, the ``untracked`` one (a console) not, ``leaks`` probable leaks."""
    from pa_dbhealth.core.registry.process import this_host

    for connection_id, pid in held.items():
        assert f"  id {connection_id}: pid {pid} on {this_host()} (" in text
    assert f"  id {untracked}:" not in text  # the registry cannot know it
    assert "What the registry cannot know" in text
    assert text.count("probable leak, id") == leaks


def assert_pruned_after_kill(
    script: subprocess.Popen[str], script_id: int, entry: Path, listed: Any
) -> None:
    """kill -9 ``script`` (no atexit): its ``entry`` stays until the next reader
    (``listed()``: the ids a listing shows) sees the process gone and removes it."""
    assert entry.exists()
    script.send_signal(signal.SIGKILL)
    script.wait(timeout=10)
    assert entry.exists()
    deadline = time.monotonic() + 10
    while True:
        rows = listed()
        if script_id not in rows or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert script_id not in rows
    assert not entry.exists()
