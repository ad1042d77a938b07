"""The registry's file format: what one process writes, read back without trusting it.

One JSON object per process::

    {"format": 1, "host": "web1", "pid": 4242, "started": 8412345, "program": "uwsgi ...",
     "written_at": 1767312000.5,
     "connections": [{"server": "127.0.0.1:3306", "account": "app", "vendor": "mysql",
                      "id": 25, "name": "default", "thread": "MainThread",
                      "opened_at": 1767311990.1, "last_used": 1767311999.9,
                      "caller": "/srv/app/views.py:10 in index", "stack": null,
                      "leak": null}]}

``started`` is the process's start time in clock ticks since boot (``/proc/<pid>/stat``), so a
reader tells a live process from a new one that got the same pid. A reader takes nothing on
trust: every field must have its type and stay within its length, numbers must be finite,
and text loses control characters (a terminal or a log shows it as written); a file that
breaks any rule is skipped whole.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import socket
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

FORMAT = 1
SHORT = 200  # characters of a host, server, account, vendor, name, thread, leak kind
LONG = 1000  # characters of a program, caller, why, fix
STACK = 16000  # characters of an opening stack
MAX_CONNECTIONS = 500  # connections one file may name
MAX_TIME = 1e11  # seconds since the epoch: anything later is not a time


@dataclass(frozen=True)
class Leak:
    """Why a connection is a probable leak and how to fix it, in the face's own words."""

    kind: str  # registry.IMPORT, registry.THREAD, registry.MODULE_SESSION, ...
    why: str
    fix: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class HeldConnection:
    """One connection a process holds, as it publishes it."""

    server: str  # registry.server_key(vendor, host, port)
    account: str  # the user it logged in as
    vendor: str  # "mysql", "postgresql"
    id: int | None  # the server's id for it (MySQL thread id, PostgreSQL backend pid)
    name: str  # what the face calls the database: a Django alias, an engine's name
    thread: str
    opened_at: float  # time.time()
    last_used: float | None  # time.time() of the end of its last query
    caller: str | None  # "file:line in function": the first frame of user code that opened it
    stack: str | None = None  # the whole opening stack, when the face records it
    leak: Leak | None = None  # set when it is a probable leak

    def shape(self) -> tuple[Any, ...]:
        """Everything but the last use: what makes a new entry worth writing at once."""
        return (
            self.server,
            self.account,
            self.id,
            self.name,
            self.thread,
            self.opened_at,
            self.caller,
            self.stack is not None,
            self.leak,
        )

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key, limit in (("caller", LONG), ("stack", STACK), ("thread", SHORT)):
            if isinstance(data[key], str):
                data[key] = data[key][-limit:]  # the end of a stack is the interesting part
        return data


@dataclass(frozen=True)
class ProcessEntry:
    """One process's file: who it is and the connections it holds."""

    file: str  # its name in the registry's directory
    host: str
    pid: int
    started: int | None
    program: str
    written_at: float
    connections: tuple[HeldConnection, ...]


def _safe_host(host: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", host)[:64] or "unknown"


def file_name(host: str, pid: int) -> str:
    return f"{_safe_host(host)}-{pid}.json"


class Malformed(ValueError):
    pass


def _clean(text: str, *, lines: bool = False) -> str:
    return "".join(c if c.isprintable() or (lines and c == "\n") else "?" for c in text)


def _text(data: dict[str, Any], key: str, limit: int, *, optional: bool = False) -> Any:
    value = data.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise Malformed(key)
    return _clean(value, lines=limit == STACK)


def _whole(data: dict[str, Any], key: str, low: int, high: int, *, optional: bool = False) -> Any:
    value = data.get(key)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise Malformed(key)
    return value


def _time(data: dict[str, Any], key: str, *, optional: bool = False) -> Any:
    value = data.get(key)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Malformed(key)
    if not (math.isfinite(value) and 0 <= value <= MAX_TIME):
        raise Malformed(key)
    return float(value)


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Malformed("not an object")
    return value


def _leak(value: Any) -> Leak | None:
    if value is None:
        return None
    data = _object(value)
    return Leak(_text(data, "kind", SHORT), _text(data, "why", LONG), _text(data, "fix", LONG))


def _held(value: Any) -> HeldConnection:
    data = _object(value)
    return HeldConnection(
        server=_text(data, "server", SHORT),
        account=_text(data, "account", SHORT),
        vendor=_text(data, "vendor", SHORT),
        id=_whole(data, "id", 0, 2**63, optional=True),
        name=_text(data, "name", SHORT),
        thread=_text(data, "thread", SHORT),
        opened_at=_time(data, "opened_at"),
        last_used=_time(data, "last_used", optional=True),
        caller=_text(data, "caller", LONG, optional=True),
        stack=_text(data, "stack", STACK, optional=True),
        leak=_leak(data.get("leak")),
    )


def _no_constants(name: str) -> Any:
    raise Malformed(f"{name} is not a number")


def parse(data: bytes, name: str) -> ProcessEntry | None:
    """The entry in a file's ``data`` (its ``name`` must be the one its process writes), or
    None when anything about it is wrong."""
    try:
        raw = _object(json.loads(data.decode("utf-8"), parse_constant=_no_constants))
        if raw.get("format") != FORMAT:
            return None
        connections = raw.get("connections")
        if not isinstance(connections, list) or len(connections) > MAX_CONNECTIONS:
            return None
        entry = ProcessEntry(
            file=name,
            host=_text(raw, "host", SHORT),
            pid=_whole(raw, "pid", 1, 2**31),
            started=_whole(raw, "started", 0, 2**63, optional=True),
            program=_text(raw, "program", LONG),
            written_at=_time(raw, "written_at"),
            connections=tuple(_held(item) for item in connections),
        )
    except (ValueError, RecursionError, UnicodeDecodeError):  # Malformed is a ValueError
        return None
    return entry if name == file_name(entry.host, entry.pid) else None


# --- who this process is, and whether another one still runs ---


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


_SECRET_ARGUMENT = re.compile(
    r"(?i)(-[\w-]*(?:password|passwd|secret|token|key)[\w-]*(?:=|\s+))\S+"
)
_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")


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
    text = _SECRET_ARGUMENT.sub(r"\1***", " ".join(args))
    return _URL_PASSWORD.sub(r"\1***@", text)


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
    line (the interpreter by its base name, values of ``--password``-like options and
    passwords in URLs hidden) and, in uWSGI, which worker it is."""
    pid = os.getpid()
    found = _identity.get(pid)
    if found is None:
        program = _clean(_command_line() + _uwsgi_role())[:LONG]
        found = (this_host(), pid, start_ticks(pid), program)
        _identity.clear()
        _identity[pid] = found
    return found
