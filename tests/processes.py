"""Real processes for the tests: the test site under uWSGI, ``manage.py`` commands, scripts.

    site = processes.uwsgi(processes=2, threads=2, settings={"PA_DBHEALTH": {...}})
    status, body = site.get("/health/default/")
    out, err, code = processes.manage("dbconnections", "--format", "json")
    out, err, code = processes.python("from django.db import connection; ...")

They run the test site (``testsite.process_settings``) with the suite's ``DATABASES`` as
they are when the process starts, plus ``settings`` (a dict, passed as JSON) and ``env``.
Each process starts in a session of its own with its output in files in the test's folder;
``Processes.stop_all`` (the ``processes`` fixture calls it after every test, also a failed
one) stops whatever still runs, its children too. ``logs()`` is what conftest adds to the
report of a failed test.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

TESTS = Path(__file__).resolve().parent
SETTINGS_MODULE = "testsite.process_settings"


class Finished(NamedTuple):
    """What a finished process printed, and its exit code."""

    out: str
    err: str
    returncode: int


def group_members(group: int) -> list[int]:
    """Pids of the live (not zombie) processes of a process group."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[2]) == group and fields[0] not in ("Z", "X"):
            members.append(int(stat.parent.name))
    return members


def _end(proc: subprocess.Popen[Any], timeout: float, sig: int = signal.SIGINT) -> None:
    """Signal the process (SIGINT: Ctrl-C), give it ``timeout`` seconds, then SIGKILL
    whatever is left of its process group (the process, and children it left behind) and
    wait until they are gone."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    # Its own process group (start_new_session): only what it started.
    deadline = time.monotonic() + 10
    while group_members(proc.pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            raise AssertionError(f"processes of group {proc.pid} outlived SIGKILL")
        time.sleep(0.01)


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float = 120,
) -> Finished:
    """Run ``argv`` to its end (``env`` None: this process's environment). Past ``timeout``
    it is killed, with its children, and the test fails with what it printed."""
    proc = subprocess.Popen(
        list(argv),
        env=None if env is None else dict(env),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _end(proc, 0, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(
            f"{' '.join(argv)} did not finish within {timeout:g} s:\n{out}{err}"
        ) from None
    finally:
        _end(proc, 0, signal.SIGKILL)
    return Finished(out, err, proc.returncode)


def _default_interrupt() -> None:
    """Ctrl-C (SIGINT) must stop the child even when the suite runs with it ignored (a
    background job of a shell script): ``stop`` relies on it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Running:
    """A process started by ``Processes.spawn``; stdout and stderr go to files."""

    def __init__(self, name: str, argv: list[str], folder: Path, **popen: Any) -> None:
        self.name, self.argv = name, argv
        self.out_path, self.err_path = folder / f"{name}.out", folder / f"{name}.err"
        with self.out_path.open("wb") as out, self.err_path.open("wb") as err:
            self.proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=err,
                start_new_session=True,
                preexec_fn=_default_interrupt,  # only signal(), before exec
                **popen,
            )

    @property
    def out(self) -> str:
        return self.out_path.read_text(errors="replace")

    @property
    def err(self) -> str:
        return self.err_path.read_text(errors="replace")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self, lines: int = 40) -> str:
        """The last ``lines`` of its stdout and stderr, for an assertion message."""
        state = "running" if self.proc.poll() is None else f"exit code {self.proc.returncode}"
        parts = [f"--- {self.name} ({state}): {' '.join(self.argv)}"]
        for path in (self.out_path, self.err_path):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path.name}" + ("".join(f"\n{line}" for line in tail) or " empty"))
        return "\n".join(parts)

    def wait_for(self, done: Callable[[str], bool], timeout: float = 30) -> str:
        """Wait until ``done(stdout + stderr)``; returns that text. Fails, with the log, when
        the process exits first or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.out + self.err
            if done(text):
                return text
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited first\n{self.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: not within {timeout:g} s\n{self.log()}")
            time.sleep(0.05)

    def stop(self, timeout: float = 15) -> Finished:
        """SIGINT (Ctrl-C), then SIGKILL after ``timeout``; nothing of it is left running."""
        _end(self.proc, timeout)
        return Finished(self.out, self.err, self.proc.returncode)


class Site(Running):
    """The test site under uWSGI, serving HTTP on ``url``."""

    def __init__(self, name: str, argv: list[str], folder: Path, port: int, **popen: Any):
        super().__init__(name, argv, folder, **popen)
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    def get(
        self, path: str, headers: Mapping[str, str] | None = None, timeout: float = 30
    ) -> tuple[int, str]:
        """``(status, body)`` of a GET; an error status is an answer, not an exception."""
        request = urllib.request.Request(self.url + path, headers=dict(headers or {}))  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                return int(response.status), response.read().decode()
        except urllib.error.HTTPError as error:
            return int(error.code), error.read().decode()
        except OSError as exc:
            raise AssertionError(f"GET {path}: {exc}\n{self.log()}") from None

    def wait_ready(self, workers: int, timeout: float) -> None:
        """Until each worker is up and the site answers a request (any status)."""
        self.wait_for(lambda log: log.count("spawned uWSGI worker") >= workers, timeout)
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(self.url + "/", timeout=5).close()  # noqa: S310
                return
            except urllib.error.HTTPError:
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"uWSGI is not answering\n{self.log()}") from None
                time.sleep(0.05)


def uwsgi_binary() -> str | None:
    """uWSGI from PyPI next to this Python (Debian's uwsgi-core lacks the Python plugin)."""
    return shutil.which("uwsgi", path=str(Path(sys.executable).parent))


class Processes:
    """Starts the test's processes in ``folder`` and stops all of them in ``stop_all``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.started: list[Running] = []

    def env(
        self, settings: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """The environment of a process running the test site with the suite's DATABASES."""
        from django.conf import settings as django_settings

        return {
            **os.environ,
            # The suite's own PYTHONPATH after the test site's: a checkout run from another
            # working tree (PYTHONPATH=tree) gives its children the same pa_dbhealth.
            "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])),
            "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
            "TESTSITE_DATABASES": json.dumps(django_settings.DATABASES, default=str),
            "TESTSITE_SETTINGS": json.dumps(dict(settings or {})),
            **(env or {}),
        }

    def manage(
        self,
        *args: str,
        settings: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 120,
    ) -> Finished:
        """``manage.py ARGS`` of the test site (``python -m django``), to its end."""
        argv = [sys.executable, "-m", "django", *args]
        return run(argv, env=self.env(settings, env), cwd=self.folder, timeout=timeout)

    def python(
        self,
        code: str,
        *,
        settings: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 120,
    ) -> Finished:
        """``python -c CODE`` after ``django.setup()`` of the test site, to its end."""
        argv = [sys.executable, "-c", f"import django; django.setup()\n{code}"]
        return run(argv, env=self.env(settings, env), cwd=self.folder, timeout=timeout)

    def spawn(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        name: str | None = None,
    ) -> Running:
        """Start a process that runs until stopped (``env`` None: the test site's)."""
        name = name or f"{Path(argv[0]).name}-{len(self.started) + 1}"
        running = Running(
            name, list(argv), self.folder, env=dict(env or self.env()), cwd=self.folder
        )
        self.started.append(running)
        return running

    def spawn_manage(
        self,
        *args: str,
        settings: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Running:
        """``manage.py ARGS`` of the test site, running until stopped (``--watch``, ...)."""
        argv = [sys.executable, "-m", "django", *args]
        return self.spawn(argv, env=self.env(settings, env), name=f"manage-{args[0]}")

    def uwsgi(
        self,
        *,
        processes: int = 1,
        threads: int = 1,
        settings: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        options: Sequence[str] = (),
        timeout: float = 60,
        module: str = "testsite.wsgi:application",
    ) -> Site:
        """The test site under uWSGI (``processes`` x ``threads``, HTTP on a free loopback
        port), once every worker is up; ``module`` is the WSGI app (another app: a module in
        tests/). Skips the test when uWSGI is not installed."""
        import pytest

        from pa_dbhealth.sandbox import free_port

        binary = uwsgi_binary()
        if binary is None:
            pytest.skip("uWSGI is not installed (pip install uwsgi)")
        port = free_port()
        argv = [
            binary,
            "--master",
            "--need-app",
            "--strict",
            f"--http-socket=127.0.0.1:{port}",
            f"--processes={processes}",
            f"--threads={threads}",
            f"--home={sys.prefix}",
            f"--pythonpath={TESTS}",
            f"--module={module}",
            *options,
        ]
        site = Site(
            f"uwsgi-{len(self.started) + 1}",
            argv,
            self.folder,
            port,
            env=self.env(settings, env),
            cwd=self.folder,
        )
        self.started.append(site)
        site.wait_ready(processes, timeout)
        return site

    def logs(self) -> str:
        return "\n".join(running.log() for running in self.started)

    def stop_all(self) -> None:
        for running in self.started:
            running.stop()
