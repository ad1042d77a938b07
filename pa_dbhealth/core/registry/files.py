"""The registry's file format: what one process writes, read back without trusting it.

One JSON object per process::

    {"format": 1, "host": "web1", "pid": 4242, "started": 8412345, "program": "uwsgi ...",
     "written_at": 1767312000.5,
     "connections": [{"server": "127.0.0.1:3306", "account": "app", "vendor": "mysql",
                      "id": 25, "name": "default", "thread": "MainThread",
                      "opened_at": 1767311990.1, "last_used": 1767311999.9,
                      "caller": "/srv/app/views.py:10 in index", "stack": null,
                      "leak": null}]}

``started`` is the process's start time in clock ticks since boot
(:mod:`pa_dbhealth.core.registry.process`), so a reader tells a live process from a new one
that got the same pid. A reader takes nothing on
trust: every field must have its type and stay within its length, numbers must be finite,
and text loses control characters (a terminal or a log shows it as written); a file that
breaks any rule is skipped whole. A program's secrets are hidden again as it is read
(:mod:`.redact`): a file written by an older version, or by hand, shows none.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from typing import Any

from pa_dbhealth.core.registry import redact

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


def safe_host(host: str) -> str:
    """The host as a file name holds it."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", host)[:64] or "unknown"


def file_name(host: str, pid: int) -> str:
    return f"{safe_host(host)}-{pid}.json"


class Malformed(ValueError):
    pass


def clean(text: str, *, lines: bool = False) -> str:
    """``text`` without control characters (``lines``: newlines kept)."""
    if (text.replace("\n", "") if lines else text).isprintable():
        return text  # the usual case, at C speed: a stack is 16 000 characters
    return "".join(c if c.isprintable() or (lines and c == "\n") else "?" for c in text)


def _text(data: dict[str, Any], key: str, limit: int, *, optional: bool = False) -> Any:
    value = data.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise Malformed(key)
    return clean(value, lines=limit == STACK)


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
            program=redact.command_line(_text(raw, "program", LONG)),
            written_at=_time(raw, "written_at"),
            connections=tuple(_held(item) for item in connections),
        )
    except (ValueError, RecursionError, UnicodeDecodeError):  # Malformed is a ValueError
        return None
    return entry if name == file_name(entry.host, entry.pid) else None
