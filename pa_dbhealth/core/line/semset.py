"""The System V semaphore set under an account's line (:mod:`pa_dbhealth.core.line`): its
atomic operations and what it holds now. No policy here: :mod:`.repairs` heals it from the
server's word, :mod:`.semaphores` is the line itself."""

from __future__ import annotations

import ctypes
import errno
import functools
import os
from typing import Any

from pa_dbhealth.core.line.sysv import (
    CAP,
    GETVAL,
    IPC_NOWAIT,
    IPC_RMID,
    RETIRED,
    TOKENS,
    SemBuf,
    timespec,
)
from pa_dbhealth.core.line.sysv import libc as c_library


@functools.lru_cache(maxsize=64)
def _operations(ops: tuple[tuple[int, int, int], ...]) -> Any:
    """The C array of ``ops`` for semop, made once: the kernel only reads it, and building
    it costs a request more than the system call itself while the worker's caches are
    cold (the same few operations run on every request)."""
    return (SemBuf * len(ops))(*(SemBuf(*op) for op in ops))


class SemaphoreSet:
    """One account's semaphores. Each method is one system call."""

    def __init__(self, semid: int, key: int) -> None:
        self.semid = semid
        self.key = key
        self.removed = False

    def _op(self, *ops: tuple[int, int, int], timeout: float | None = None) -> bool:
        """Apply ``(semaphore, change, flags)`` operations atomically; False when they would
        wait (``IPC_NOWAIT``), the timeout passed, or the line was removed meanwhile."""
        buffer = _operations(ops)
        libc = c_library()
        while True:
            if timeout is None:
                result = libc.semop(self.semid, buffer, len(ops))
            else:
                spec = timespec(timeout)
                result = libc.semtimedop(self.semid, buffer, len(ops), ctypes.byref(spec))
            if result == 0:
                return True
            failure = ctypes.get_errno()
            if failure == errno.EINTR and timeout is None:
                continue
            if failure in (errno.EAGAIN, errno.EINTR):
                return False
            if failure in (errno.EIDRM, errno.EINVAL):
                self.removed = True  # made again by the next process that needs it
                return False
            if failure == errno.ERANGE:  # a value would pass SEMVMX: nothing was changed
                return False
            raise OSError(failure, os.strerror(failure))

    def _get(self, what: int, semaphore: int) -> int:
        found: int = c_library().semctl(self.semid, semaphore, what)
        if found < 0:
            self.removed = True
            return 0
        return found

    @property
    def cap(self) -> int:
        return self._get(GETVAL, CAP)

    @property
    def retired(self) -> bool:
        """Whether tokens were retired since the line last heard the server's count: the
        next connect asks it (a refusal may have come from a connection closing late)."""
        return self._get(GETVAL, RETIRED) > 0

    @property
    def free(self) -> int:
        return max(self._get(GETVAL, TOKENS), 0)

    @property
    def tokens(self) -> int:
        """The cap the line holds tokens for (the server's, as last said)."""
        return self.cap

    def force(self, free: int) -> None:
        """Set the free tokens without regard for holders (tests of the repairs)."""
        now = self.free
        if free != now:
            self._op((TOKENS, free - now, IPC_NOWAIT))

    def remove(self) -> None:
        """Remove the line from the system (tests; a line in use is made again by the next
        process that needs it)."""
        c_library().semctl(self.semid, 0, IPC_RMID)
        self.removed = True
