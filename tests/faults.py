"""Faults of a real server, for tests of what clients do when it fails.

``kill_server(info)`` is ``kill -9``: the server dies at once, its clients' connections are
reset, and ``pa_dbhealth.sandbox.restart(info)`` brings it back on the same data, port and
accounts. ``frozen(info)`` is SIGSTOP until the block ends (SIGCONT): the server keeps its
connections and its port but answers nothing, like a host that hangs.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager

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


@contextmanager
def frozen(info: SandboxInfo) -> Iterator[None]:
    """The server stopped (SIGSTOP) for the block, and continued (SIGCONT) after it."""
    pid = _checked_pid(info)
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)
