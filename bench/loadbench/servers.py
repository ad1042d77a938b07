"""One uWSGI instance serving the bench site (Django or Flask) with one configuration."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from loadbench.configs import Config
from pa_dbhealth import sandbox

BENCH = Path(__file__).resolve().parent.parent


def uwsgi_binary() -> str:
    found = shutil.which("uwsgi", path=str(Path(sys.executable).parent)) or shutil.which("uwsgi")
    if not found:
        raise SystemExit("uwsgi is not installed: `pip install uwsgi` (it compiles)")
    return found


class Server:
    """``args`` gives ``processes``, ``threads`` and ``hold_ms``; the log goes to ``log``;
    ``settings``: more of the site's settings (``BENCH_CONNECT_RETRY``)."""

    def __init__(
        self,
        config: Config,
        info: sandbox.SandboxInfo,
        args: Any,
        log: Path,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        self.port = sandbox.free_port()
        self.log = log
        env = {
            **os.environ,
            **info.env(),
            **config.env,
            **(settings or {}),
            "DJANGO_SETTINGS_MODULE": "benchsite.settings",
            "BENCH_HOLD": str(args.hold_ms / 1000),
            # The bench's own registry of holders, not the user's.
            "PA_DBHEALTH_REGISTRY_DIR": str(log.parent / "registry" / "holders"),
        }
        module = "flasksite.wsgi:application" if config.flask else "benchsite.wsgi:application"
        cmd = [
            uwsgi_binary(),
            "--master",
            "--die-on-term",
            "--need-app",
            "--strict",
            f"--http=127.0.0.1:{self.port}",
            "--http-keepalive",
            f"--processes={args.processes}",
            f"--threads={args.threads}",
            "--enable-threads",
            f"--home={sys.prefix}",
            f"--pythonpath={BENCH}",
            f"--pythonpath={BENCH.parent}",  # flask_demo
            f"--module={module}",
            "--disable-logging",
            f"--logto={log}",
        ]
        self.proc = subprocess.Popen(cmd, env=env, start_new_session=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"uWSGI exited ({self.proc.returncode}): see {self.log}")
            try:
                with urllib.request.urlopen(f"{self.url}/nodb/", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"uWSGI did not answer within {timeout:g} s: see {self.log}")
            time.sleep(0.1)

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by uWSGI: its master, workers and router."""
        ticks = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                # Fields after the command name, which is in parentheses: state, ppid,
                # pgrp, session, ... utime and stime are the 12th and 13th of them.
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue  # gone meanwhile
            if int(fields[3]) == self.proc.pid:  # in uWSGI's own session (start_new_session)
                ticks += int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    def log_size(self) -> int:
        return self.log.stat().st_size

    def log_counts(self, offset: int) -> tuple[int, int, int, int]:
        """(requests failed with 1226, connect retries, give-ups, handoffs) logged after
        ``offset``."""
        with self.log.open("rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
        # Django's request log and backend, or Flask's app log and pa_dbhealth.sqlalchemy.
        failed = r"^(?:django\.request|flask_demo\.app) .*\(1226, "
        ours = r"^pa_dbhealth\.(?:backends\.mysql|sqlalchemy)"
        return (
            len(re.findall(failed, text, re.MULTILINE)),
            len(re.findall(ours + r" connect .* refused", text, re.MULTILINE)),
            len(re.findall(ours + r" gave up", text, re.MULTILINE)),
            len(re.findall(ours + r" .*: took over", text, re.MULTILINE)),
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: only what we started
                self.proc.wait()
