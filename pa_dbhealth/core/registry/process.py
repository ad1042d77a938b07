"""Who this process is, and whether another process of this host still runs: what the
registry of holders writes about a process, and how a reader tells a dead one.

A process is its host, its pid and its start time in clock ticks since boot
(``/proc/<pid>/stat``), so a new process that got the same pid is not taken for the old one.
Its program is its command line, with secrets hidden, and in uWSGI which worker it is.
"""

from __future__ import annotations

import functools
import os
import socket
import sys
from pathlib import Path

from pa_dbhealth.core.registry import redact
from pa_dbhealth.core.registry.files import LONG, clean


@functools.cache
def this_host() -> str:
    return socket.gethostname() or "unknown"


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    # After the command name, which is in parentheses and may contain anything: the state
    # (field 3), ... the start time in clock ticks since boot (field 22).
    fields = text.rsplit(")", 1)[-1].split()
    return fields if len(fields) > 19 else None


def start_ticks(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields and fields[19].isdigit() else None


def process_alive(pid: int, started: int | None) -> bool:
    """Whether process ``pid`` of this host still runs and is the one that started at
    ``started`` (when known); a zombie counts as gone."""
    fields = _stat_fields(pid)
    if fields is not None:
        return fields[0] != "Z" and (started is None or fields[19] == str(started))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # another user's process now: the one that wrote is gone
    return True


def _command_line() -> str:
    try:
        raw = Path("/proc/self/cmdline").read_bytes()
        args = [part.decode(errors="replace") for part in raw.split(b"\0") if part]
    except OSError:
        args = []
    if not args:
        args = list(getattr(sys, "orig_argv", None) or sys.argv)
    if args:
        args[0] = os.path.basename(args[0])
    return " ".join(redact.words(args))


def _uwsgi_role() -> str:
    try:
        import uwsgi
    except ImportError:
        return ""
    try:
        worker = int(uwsgi.worker_id())
    except Exception:  # an older uWSGI, or called where it cannot say
        return ""
    return f" (uWSGI worker {worker})" if worker else " (uWSGI master)"


_identity: dict[int, tuple[str, int, int | None, str]] = {}


def this_process() -> tuple[str, int, int | None, str]:
    """``(host, pid, start ticks, program)`` of this process; the program is its command
    line (the interpreter by its base name, its secrets hidden: :mod:`.redact`)
    and, in uWSGI, which worker it is."""
    pid = os.getpid()
    found = _identity.get(pid)
    if found is None:
        program = clean(_command_line() + _uwsgi_role())[:LONG]
        found = (this_host(), pid, start_ticks(pid), program)
        _identity.clear()
        _identity[pid] = found
    return found
