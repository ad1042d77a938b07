"""A first-come, first-served line for an account's connections, across the processes of a
host: a System V semaphore set with one token per connection the account may have.

Seven semaphores: the free tokens, the *head* (one waiter at a time stands at the front and
is the only one that touches the server while the line is full), the cap as the server
last said it, the tokens still to be removed after a lowered cap (taken from the next
ones given back), the tokens retired since the server last counted the account, the
*counter* (the one process of the host that counts the account while connections are
parked, :mod:`pa_dbhealth.core.parking`), and how many connections were taken (a token, or
a parked connection) since the counter last looked. A connect takes a token; the
connection gives it back when it is really closed, and the kernel hands it at once to the
head, whatever its process. The kernel also gives back what a dead process held
(``SEM_UNDO``), so a ``kill -9`` loses nothing.

The server stays the truth. Connections held elsewhere (another host, a console, a process
without pa_dbhealth) take slots the line cannot see, so a token is permission to try: the
head retries a refused connect every :data:`PROBE_INTERVAL` seconds, and everyone behind it
waits without touching the server. The count heals itself when the server disagrees
(:mod:`.repairs`), and a process gives back only tokens it took (``Ticket``,
:mod:`pa_dbhealth.core.in_line`).

A line belongs to the user that made it (mode 0600); one made by anyone else is not used.
Where System V IPC is not available (another OS, a container without it), :func:`line_for`
returns None and callers wait as before.
"""

from __future__ import annotations

import ctypes
import errno
import time

from pa_dbhealth.core.line.repairs import Repairs
from pa_dbhealth.core.line.sysv import (
    COUNTER,
    DEBT,
    GETNCNT,
    GETVAL,
    HEAD,
    IPC_CREAT,
    IPC_EXCL,
    IPC_NOWAIT,
    IPC_RMID,
    MAX_TOKENS,
    MODE,
    SEM_UNDO,
    SEMAPHORES,
    SETALL,
    TAKEN,
    TOKENS,
    key_of,
    owned_by_me,
)
from pa_dbhealth.core.line.sysv import libc as c_library

PROBE_INTERVAL = 0.05  # the head tries the server at most 20 times a second


class Line(Repairs):
    """The line of one account. Each method is one or two system calls."""

    def enter(self) -> bool:
        """A token at once, only when nobody stands at the head (never ahead of a waiter)."""
        return self._op(
            (HEAD, -1, IPC_NOWAIT), (TOKENS, -1, IPC_NOWAIT | SEM_UNDO), (HEAD, 1, IPC_NOWAIT)
        )

    def take(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a token (the head does, nobody else)."""
        if timeout <= 0:
            return self._op((TOKENS, -1, IPC_NOWAIT | SEM_UNDO))
        return self._op((TOKENS, -1, SEM_UNDO), timeout=timeout)

    def give_back(self) -> None:
        """Return a token: the head, in any process, gets it at once (unless a lowered cap
        still owes one: then it is removed instead)."""
        if self._op((DEBT, -1, IPC_NOWAIT), (TOKENS, 1, SEM_UNDO), (TOKENS, -1, IPC_NOWAIT)):
            return
        self._op((TOKENS, 1, SEM_UNDO))
        self.trim()

    # --- the one process that counts the account while connections are parked ---------

    def become_counter(self) -> bool:
        """Whether this process has just become the host's one process that counts the
        account for PARK (False: another one is); the kernel frees the role when the
        process ends."""
        return self._op((COUNTER, -1, IPC_NOWAIT | SEM_UNDO))

    def leave_counter(self) -> None:
        self._op((COUNTER, 1, SEM_UNDO))

    def note_taken(self) -> None:
        """A connection was taken for use (a token, or a parked connection): the site is
        not idle. A separate call, so a count at its maximum never stops a connect."""
        self._op((TAKEN, 1, IPC_NOWAIT))

    def taken_since_last_look(self) -> bool:
        """Whether a connection was taken since the last call (the counter's)."""
        taken = self._get(GETVAL, TAKEN)
        if taken:
            self._op((TAKEN, -taken, IPC_NOWAIT))
        return taken > 0

    # --- the head -----------------------------------------------------------------------

    def take_head(self, timeout: float) -> bool:
        """Stand at the head, behind everyone who came first: up to ``timeout`` seconds."""
        if timeout <= 0:
            return self._op((HEAD, -1, IPC_NOWAIT | SEM_UNDO))
        return self._op((HEAD, -1, SEM_UNDO), timeout=timeout)

    def leave_head(self) -> None:
        self._op((HEAD, 1, SEM_UNDO))

    @property
    def waiting(self) -> int:
        """How many threads, in all processes, wait in the line now: those behind the head,
        and the head itself while it waits for a token (a head refused with a token retires
        it and waits for another: it never holds one while it waits)."""
        return max(self._get(GETNCNT, TOKENS), 0) + max(self._get(GETNCNT, HEAD), 0)

    def until_someone_waits(self, timeout: float) -> bool:
        """Sleep in the kernel (no polling) until a connect, in any process, stands in the
        line, for at most ``timeout`` seconds; whether one does."""
        return self._op((HEAD, 0, 0), timeout=timeout)

    @property
    def someone_waits(self) -> bool:
        """Whether a connect, in any process, stands in the line now (one system call): the
        head is taken, by a waiter or a head between two attempts at the server."""
        return self._get(GETVAL, HEAD) == 0


def open_line(server: str, account: str, tokens: int | None) -> Line | None:
    """The line of ``account`` on ``server`` ("host:port"): the existing one, or one made
    with ``tokens`` tokens (the account's cap) when given; None where it cannot be used."""
    libc = c_library()
    if libc is None:
        return None
    key = key_of(server, account)
    if tokens is not None and 1 <= tokens <= MAX_TOKENS:
        semid = libc.semget(key, SEMAPHORES, IPC_CREAT | IPC_EXCL | MODE)
        if semid >= 0:
            values = (ctypes.c_ushort * SEMAPHORES)(tokens, 1, tokens, 0, 0, 1, 0)
            if libc.semctl(semid, 0, SETALL, values) != 0:
                libc.semctl(semid, 0, IPC_RMID)
                return None
            return Line(semid, key)
        if ctypes.get_errno() != errno.EEXIST:
            return None
    semid = libc.semget(key, SEMAPHORES, 0)
    if semid < 0 or not owned_by_me(libc, semid):
        return None
    line = Line(semid, key)
    for _ in range(100):  # just made by another process: its values come a moment later
        if line.cap > 0:
            return line
        time.sleep(0.001)
    return None
