"""Faults of a real server, for tests of what clients do when it fails.

``kill_server(info)`` is ``kill -9``: the server dies at once, its clients' connections are
reset, and ``pa_dbhealth.sandbox.restart(info)`` brings it back on the same data, port and
accounts. ``frozen(info)`` is SIGSTOP until the block ends (SIGCONT): the server keeps its
connections and its port but answers nothing, like a host that hangs.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pa_dbhealth.sandbox import SandboxError, SandboxInfo
from pa_dbhealth.sandbox.process import wait_gone


def _checked_pid(info: SandboxInfo) -> int:
    if not info.is_running():
        raise SandboxError(f"the sandbox in {info.base_dir} is not running")
    return info.pid


def kill_server(info: SandboxInfo, timeout: float = 10.0) -> None:
    """SIGKILL the server and return once it has exited (its port and files released)."""
    os.kill(_checked_pid(info), signal.SIGKILL)
    if not wait_gone(info.pid, info.data_dir, timeout):
        raise AssertionError(f"the server (pid {info.pid}) outlived SIGKILL for {timeout} s")


def _all_stopped(pid: int) -> bool:
    """Whether every thread of the process is stopped: SIGSTOP only asks them to stop."""
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        try:
            state = stat.read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue  # a thread that ended meanwhile
        if state not in ("T", "t"):
            return False
    return True


@contextmanager
def frozen(info: SandboxInfo, timeout: float = 10.0) -> Iterator[None]:
    """The server stopped (SIGSTOP) for the block, from its start: every thread of it is
    stopped before the block runs. Continued (SIGCONT) after it."""
    pid = _checked_pid(info)
    os.kill(pid, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + timeout
        while not _all_stopped(pid):
            if time.monotonic() > deadline:
                raise AssertionError(f"the server (pid {pid}) did not stop within {timeout} s")
            time.sleep(0.005)
        yield
    finally:
        os.kill(pid, signal.SIGCONT)
