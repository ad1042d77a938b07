"""The account's line across the processes of a host (:mod:`.semaphores`, over the System V
calls of :mod:`.sysv`), and the lines this process knows: which account has which line, and
its cap as the server said it. Connects use it through :mod:`pa_dbhealth.core.connect`."""

from __future__ import annotations

import re
import threading

from pa_dbhealth.core.line.semaphores import PROBE_INTERVAL, Line, open_line
from pa_dbhealth.core.line.sysv import (
    IPC_CREAT,
    IPC_RMID,
    IPC_STAT,
    MAX_TOKENS,
    SEMAPHORES,
    key_of,
    owned_by_me,
)
from pa_dbhealth.core.line.sysv import libc as c_library

__all__ = [
    "IPC_CREAT",
    "IPC_RMID",
    "IPC_STAT",
    "PROBE_INTERVAL",
    "SEMAPHORES",
    "Line",
    "cap_in_message",
    "forget",
    "heal",
    "key_of",
    "known",
    "line_for",
    "note_cap",
    "open_line",
]

# --- the lines this process knows, by account ------------------------------------------------

_CAP = re.compile(r"current value: (\d+)")
_caps: dict[tuple[str, str], int] = {}
_lines: dict[tuple[str, str], Line] = {}
_lines_lock = threading.Lock()


def note_cap(server: str, account: str, cap: int | None) -> None:
    """The account's cap as the server said it (its facts, or a 1226 message): remembered,
    and the line's made to agree."""
    if not cap or not 1 <= int(cap) <= MAX_TOKENS:
        return
    _caps[(server, account)] = int(cap)
    with _lines_lock:
        line = _lines.get((server, account))
    if line is not None and not line.removed:
        line.set_cap(int(cap))


def known() -> list[tuple[str, str]]:
    """The accounts whose line this process uses."""
    with _lines_lock:
        return sorted(_lines)


def heal(server: str, account: str, cap: int | None, in_use: int) -> None:
    """What a look at the server saw (the account's cap and connections): the line agrees."""
    note_cap(server, account, cap)
    with _lines_lock:
        line = _lines.get((server, account))
    if line is not None and not line.removed:
        line.heal(None, in_use)


def cap_in_message(message: str) -> int | None:
    """The cap a 1226 states: "... 'max_user_connections' resource (current value: 3)"."""
    found = _CAP.search(message)
    return int(found.group(1)) if found else None


def line_for(server: str, account: str) -> Line | None:
    """The line of the account: the one another process made, or a new one once the cap
    is known; None before, or where lines cannot be used."""
    where = (server, account)
    with _lines_lock:
        line = _lines.get(where)
        if line is not None and not line.removed:
            return line
        cap = _caps.get(where)
        line = open_line(server, account, cap)
        if line is None:
            return None
        _lines[where] = line
    if cap is not None:
        line.set_cap(cap)
    return line


def forget(server: str, account: str) -> None:
    """Remove the account's line from the system (when it is this user's) and from this
    process: a server that is gone for good, a test's."""
    with _lines_lock:
        _lines.pop((server, account), None)
    _caps.pop((server, account), None)
    libc = c_library()
    if libc is None:
        return
    semid = libc.semget(key_of(server, account), SEMAPHORES, 0)
    if semid >= 0 and owned_by_me(libc, semid):
        libc.semctl(semid, 0, IPC_RMID)
