"""A first-come, first-served line for an account's connections, across the processes of a
host: a System V semaphore holding one token per connection the account may have.

Before it connects, a process takes a token; when it really closes the connection it gives
the token back, and the kernel hands it at once to the thread that has waited longest, in
whatever process (semop's queue is served in order). Nobody polls. The kernel also gives a
dead process's tokens back (``SEM_UNDO``), so a ``kill -9`` loses nothing. The server stays
the truth: connections held elsewhere (another host, a console, a process without
pa_dbhealth) take slots the line cannot see, so a token is permission to try, and the
holder still retries a refused connect, briefly.

The line of an account is found by a key derived from the server's address and the login
user; its tokens are the account's cap as the server said it. It belongs to the user that
made it (mode 0600), and a line made by anyone else is not used. Where System V IPC is not
available (another OS, a container without it), :func:`open_line` returns None and callers
wait as before.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import hashlib
import math
import os
import re
import threading
from typing import Any

IPC_CREAT = 0o1000
IPC_EXCL = 0o2000
IPC_NOWAIT = 0o4000
IPC_RMID = 0
IPC_STAT = 2
GETNCNT = 14
GETVAL = 12
SETVAL = 16
SEM_UNDO = 0x1000
MODE = 0o600
KEY_PREFIX = 0x5A000000  # keys of pa_dbhealth's lines: "Z" and 24 bits of the account


class _SemBuf(ctypes.Structure):
    _fields_ = [
        ("sem_num", ctypes.c_ushort),
        ("sem_op", ctypes.c_short),
        ("sem_flg", ctypes.c_short),
    ]


class _TimeSpec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


_libc: Any = None
_libc_lock = threading.Lock()


def _c() -> Any:
    """The C library, with the semaphore calls typed; None where it has none."""
    global _libc
    with _libc_lock:
        if _libc is None:
            try:
                library = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
                for name in ("semget", "semctl", "semop", "semtimedop"):
                    getattr(library, name)
            except (OSError, AttributeError, TypeError):
                _libc = False
            else:
                library.semtimedop.argtypes = [
                    ctypes.c_int,
                    ctypes.POINTER(_SemBuf),
                    ctypes.c_size_t,
                    ctypes.POINTER(_TimeSpec),
                ]
                library.semop.argtypes = [ctypes.c_int, ctypes.POINTER(_SemBuf), ctypes.c_size_t]
                _libc = library
        return _libc or None


def key_of(server: str, account: str) -> int:
    """The System V key of the line of ``account`` on ``server`` ("host:port")."""
    digest = hashlib.sha256(f"{server}\0{account}".encode()).digest()
    return KEY_PREFIX | int.from_bytes(digest[:3], "big")


class Line:
    """The line of one account: :meth:`take` a token before connecting, :meth:`give_back`
    it after the connection is really closed."""

    def __init__(self, semid: int, key: int, tokens: int) -> None:
        self.semid = semid
        self.key = key
        self.tokens = tokens

    def _op(self, change: int, flags: int, timeout: float | None) -> bool:
        libc = _c()
        operation = _SemBuf(0, change, flags | SEM_UNDO)
        while True:
            if timeout is None:
                result = libc.semop(self.semid, ctypes.byref(operation), 1)
            else:
                seconds = max(0.0, timeout)
                whole = math.floor(seconds)
                spec = _TimeSpec(whole, int((seconds - whole) * 1e9))
                result = libc.semtimedop(self.semid, ctypes.byref(operation), 1, ctypes.byref(spec))
            if result == 0:
                return True
            failure = ctypes.get_errno()
            if failure == errno.EINTR and timeout is None:
                continue
            if failure in (errno.EAGAIN, errno.EINTR):
                return False  # timed out (or IPC_NOWAIT found no token)
            if failure in (errno.EIDRM, errno.EINVAL):
                return False  # the line was removed meanwhile: nothing to wait for or give
            raise OSError(failure, os.strerror(failure))

    def take(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a token, behind those who came first."""
        return self._op(-1, 0, timeout) if timeout > 0 else self.take_now()

    def take_now(self) -> bool:
        """A token if one is free at once: never ahead of someone already waiting."""
        return self._op(-1, IPC_NOWAIT, None)

    def give_back(self) -> None:
        """Return a token: the longest waiter, in any process, gets it at once."""
        self._op(1, 0, None)

    @property
    def waiting(self) -> int:
        """How many threads, in all processes, wait for a token now."""
        found: int = _c().semctl(self.semid, 0, GETNCNT)
        return max(found, 0)

    @property
    def free(self) -> int:
        found: int = _c().semctl(self.semid, 0, GETVAL)
        return max(found, 0)

    def remove(self) -> None:
        """Remove the line from the system (tests; a line in use is made again by the next
        process that needs it)."""
        _c().semctl(self.semid, 0, IPC_RMID)


def _owned_by_me(libc: Any, semid: int) -> bool:
    """Whether the semaphore set belongs to this user and nobody else may use it: its
    ``ipc_perm`` (uid at offset 4, cuid at 12, mode at 20 on Linux, glibc and musl alike)."""
    buffer = ctypes.create_string_buffer(256)
    if libc.semctl(semid, 0, IPC_STAT, buffer) != 0:
        return False
    raw = buffer.raw
    uid = int.from_bytes(raw[4:8], "little")
    cuid = int.from_bytes(raw[12:16], "little")
    mode = int.from_bytes(raw[20:22], "little") & 0o777
    return uid == cuid == os.getuid() and mode & 0o077 == 0


def open_line(server: str, account: str, tokens: int) -> Line | None:
    """The line of ``account`` on ``server`` ("host:port"), made with ``tokens`` tokens (the
    account's cap) by the first process that asks; None where it cannot be used."""
    libc = _c()
    if libc is None or tokens < 1 or tokens > 32767:
        return None
    key = key_of(server, account)
    semid = libc.semget(key, 1, IPC_CREAT | IPC_EXCL | MODE)
    if semid >= 0:
        if libc.semctl(semid, 0, SETVAL, ctypes.c_int(tokens)) != 0:
            libc.semctl(semid, 0, IPC_RMID)
            return None
        return Line(semid, key, tokens)
    if ctypes.get_errno() != errno.EEXIST:
        return None
    semid = libc.semget(key, 1, 0)
    if semid < 0 or not _owned_by_me(libc, semid):
        return None
    return Line(semid, key, tokens)


# --- the lines this process knows, by account ------------------------------------------------

_CAP = re.compile(r"current value: (\d+)")
_caps: dict[tuple[str, str], int] = {}
_lines: dict[tuple[str, str, int], Line | None] = {}
_lines_lock = threading.Lock()


def note_cap(server: str, account: str, cap: int | None) -> None:
    """Remember the account's cap, as the server said it (its facts, or a 1226 message)."""
    if cap:
        _caps[(server, account)] = int(cap)


def cap_in_message(message: str) -> int | None:
    """The cap a 1226 states: "... 'max_user_connections' resource (current value: 3)"."""
    found = _CAP.search(message)
    return int(found.group(1)) if found else None


def line_for(server: str, account: str) -> Line | None:
    """The line of the account, once its cap is known; None before, or where lines cannot
    be used. Opened once per process."""
    cap = _caps.get((server, account))
    if cap is None:
        return None
    key = (server, account, cap)
    with _lines_lock:
        if key not in _lines:
            _lines[key] = open_line(server, account, cap)
        return _lines[key]


def forget(server: str, account: str) -> None:
    """Remove the account's line from the system (when it is this user's) and from this
    process: a server that is gone for good, a test's, one whose cap changed."""
    with _lines_lock:
        for key in [k for k in _lines if k[:2] == (server, account)]:
            del _lines[key]
    _caps.pop((server, account), None)
    libc = _c()
    if libc is None:
        return
    semid = libc.semget(key_of(server, account), 1, 0)
    if semid >= 0 and _owned_by_me(libc, semid):
        libc.semctl(semid, 0, IPC_RMID)
