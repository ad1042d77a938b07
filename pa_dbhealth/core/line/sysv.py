"""The System V semaphore calls the account's line is made of (:mod:`pa_dbhealth.core.line`),
through ``ctypes``: the C library where it has them, the structures, the constants, the key
of an account's set and whether a set is this user's alone."""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import math
import os
import threading
from typing import Any

IPC_CREAT = 0o1000
IPC_EXCL = 0o2000
IPC_NOWAIT = 0o4000
IPC_RMID = 0
IPC_STAT = 2
GETNCNT = 14
GETVAL = 12
SETALL = 17
SEM_UNDO = 0x1000
MODE = 0o600
KEY_PREFIX = 0x5D000000  # keys of pa_dbhealth's lines (a new prefix for the seven-semaphore set)
MAX_TOKENS = 32767  # SEMVMX
TOKENS, HEAD, CAP, DEBT, RETIRED, COUNTER, TAKEN = 0, 1, 2, 3, 4, 5, 6
SEMAPHORES = 7


class SemBuf(ctypes.Structure):
    _fields_ = [
        ("sem_num", ctypes.c_ushort),
        ("sem_op", ctypes.c_short),
        ("sem_flg", ctypes.c_short),
    ]


class TimeSpec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


_libc: Any = None
_libc_lock = threading.Lock()


def libc() -> Any:
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
                    ctypes.POINTER(SemBuf),
                    ctypes.c_size_t,
                    ctypes.POINTER(TimeSpec),
                ]
                library.semop.argtypes = [ctypes.c_int, ctypes.POINTER(SemBuf), ctypes.c_size_t]
                _libc = library
        return _libc or None


def key_of(server: str, account: str) -> int:
    """The System V key of the line of ``account`` on ``server`` ("host:port")."""
    digest = hashlib.sha256(f"{server}\0{account}".encode()).digest()
    return KEY_PREFIX | int.from_bytes(digest[:3], "big")


def timespec(seconds: float) -> TimeSpec:
    seconds = min(max(0.0, seconds), 86400.0)
    whole = math.floor(seconds)
    return TimeSpec(whole, min(999_999_999, int((seconds - whole) * 1e9)))


def owned_by_me(libc: Any, semid: int) -> bool:
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
