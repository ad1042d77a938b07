"""How many wrong health tokens one client address may send: :data:`LIMIT` within
:data:`WINDOW` seconds, then it waits (``429 Too Many Requests`` with ``Retry-After``)
until the oldest of them is :data:`WINDOW` seconds old, with the token not even compared.

The count holds across the processes of a host: each wrong token appends its time (8
bytes, one ``O_APPEND`` write: no lock needed) to a file of the registry of holders'
directory, named after a digest of the address (the address itself is not kept),
``.sign-in-<digest>``; the registry's readers leave such files alone, and this module
removes them once :data:`WINDOW` seconds old. With the registry off, or refused, each
process counts for itself. A right token clears its address's count. Nothing here raises.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path

from pa_dbhealth.core import private_files

LIMIT = 10  # wrong tokens one address may send within WINDOW
WINDOW = 60.0  # seconds
PREFIX = ".sign-in-"
_RECORD = struct.Struct("<d")
_FLAGS = (
    os.O_WRONLY
    | os.O_APPEND
    | os.O_CREAT
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
)


def _name(address: str) -> str:
    return PREFIX + hashlib.sha256(address.encode(errors="replace")).hexdigest()[:32]


class SignInAttempts:
    """Wrong tokens per client address, in the registry's directory ``where`` (None: in
    this process only)."""

    def __init__(self, where: Path | None) -> None:
        self.where = where

    def wait(self, address: str, now: float | None = None) -> int | None:
        """Seconds ``address`` must wait before its next try, or None: it may try now."""
        now = time.time() if now is None else now
        times = sorted(t for t in self._times(_name(address)) if now - WINDOW < t <= now)
        if len(times) < LIMIT:
            return None
        return max(1, math.ceil(times[-LIMIT] + WINDOW - now))

    def failed(self, address: str) -> None:
        """Count a wrong token from ``address``."""
        name, record = _name(address), _RECORD.pack(time.time())
        if not self._in_directory(lambda fd: _append(fd, name, record)):
            with _lock:
                _memory.setdefault(name, []).append(_RECORD.unpack(record)[0])
        self._sweep()

    def succeeded(self, address: str) -> None:
        """A right token from ``address``: its count starts again."""
        name = _name(address)
        with _lock:
            _memory.pop(name, None)
        self._in_directory(lambda fd: private_files.remove(fd, name))

    def forget(self) -> None:
        """Every count (a test starts afresh)."""
        with _lock:
            _memory.clear()

        def remove_all(fd: int) -> None:
            for name in os.listdir(fd):
                if name.startswith(PREFIX):
                    private_files.remove(fd, name)

        self._in_directory(remove_all, create=False)

    def _times(self, name: str) -> list[float]:
        found: list[bytes] = []
        self._in_directory(lambda fd: found.append(_read(fd, name)), create=False)
        with _lock:
            kept = list(_memory.get(name, ()))
        data = found[0] if found else b""
        usable = len(data) - len(data) % _RECORD.size
        return kept + [t for (t,) in _RECORD.iter_unpack(data[:usable])]

    def _in_directory(self, act: Callable[[int], object], *, create: bool = True) -> bool:
        """``act(dir_fd)`` in the registry's directory; False when there is none to use."""
        if self.where is None:
            return False
        try:
            with private_files.private_directory(self.where, create=create) as fd:
                act(fd)
        except OSError:
            return False
        return True

    def _sweep(self) -> None:
        """Remove counts older than the window, at most once a window per process."""
        now = time.time()
        with _lock:
            if now - _swept.get(self.where, 0.0) < WINDOW:
                return
            _swept[self.where] = now
            for name in [n for n, times in _memory.items() if max(times) < now - WINDOW]:
                del _memory[name]

        def remove_old(fd: int) -> None:
            for name in os.listdir(fd):
                if name.startswith(PREFIX):
                    with contextlib.suppress(OSError):
                        info = os.stat(name, dir_fd=fd, follow_symlinks=False)
                        if info.st_mtime < now - WINDOW:
                            private_files.remove(fd, name)

        self._in_directory(remove_old, create=False)


_lock = threading.Lock()
_memory: dict[str, list[float]] = {}
_swept: dict[Path | None, float] = {}


def _append(dir_fd: int, name: str, record: bytes) -> None:
    fd = os.open(name, _FLAGS, private_files.FILE_MODE, dir_fd=dir_fd)
    try:
        os.write(fd, record)
    finally:
        os.close(fd)


def _read(dir_fd: int, name: str) -> bytes:
    data = private_files.read_private(dir_fd, name, 64 * LIMIT * _RECORD.size)
    if data is None:  # absent, or grown past any real count: start again
        private_files.remove(dir_fd, name)
        return b""
    return data
