"""The sandbox's folder: where it is, whether it holds a stopped sandbox to resume, and
clearing what a previous server left behind before a new one is initialised."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from pa_dbhealth.sandbox.info import STATE_FILE, SandboxError, SandboxInfo
from pa_dbhealth.sandbox.process import is_server

LEFTOVERS = ("data", "tmp", STATE_FILE, "mysqld.sock", "mysqld.pid", "error.log", "server.out")


def default_dir() -> Path:
    """The folder the command-line tool uses unless told otherwise."""
    user = os.environ.get("USER") or str(os.getuid())
    return Path(tempfile.gettempdir()) / f"pa_dbhealth-sandbox-{user}"


def chosen(base_dir: str | os.PathLike[str] | None) -> Path:
    """``base_dir`` made absolute, or a new temporary folder when None."""
    if base_dir:
        return Path(base_dir).resolve()
    return Path(tempfile.mkdtemp(prefix="pa_dbhealth-sandbox-"))


def running_pid(base: Path, previous: SandboxInfo | None) -> int | None:
    """The pid of a server running on ``base``'s data: the state file's, or the pid file's
    (when the state file is unreadable)."""
    candidates = [previous.pid] if previous else []
    with contextlib.suppress(OSError, ValueError):
        candidates.append(int((base / "mysqld.pid").read_text().strip()))
    return next((pid for pid in candidates if is_server(pid, base / "data")), None)


def kept(base: Path, fresh: bool) -> SandboxInfo | None:
    """The stopped sandbox in ``base`` to resume, or None to start from scratch."""
    previous: SandboxInfo | None = None
    if (base / STATE_FILE).exists():
        try:
            previous = SandboxInfo.load(base)
        except SandboxError:
            if not fresh:
                raise
    running = running_pid(base, previous)
    if running is not None:
        where = f" on port {previous.port}" if previous and previous.pid == running else ""
        raise SandboxError(f"a sandbox is already running in {base}{where} (pid {running})")
    if previous is None or fresh:
        return None
    if not previous.data_dir.is_dir():
        raise SandboxError(
            f"the sandbox in {base} has lost its data ({previous.data_dir} is missing): "
            "start a new one with --fresh"
        )
    return previous


def clear(base: Path, flavour: str) -> None:
    """Make ``base`` ready for a new server: what a previous one left is removed, the
    folder created. MariaDB's installer cannot work in a path with spaces."""
    if flavour == "MariaDB" and any(char.isspace() for char in str(base)):
        raise SandboxError(
            f"mariadb-install-db cannot initialise a folder whose path has spaces ({base}): "
            "choose another with --dir"
        )
    for leftover in LEFTOVERS:
        path = base / leftover
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    base.mkdir(parents=True, exist_ok=True)
