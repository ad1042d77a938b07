"""A first-come, first-served line for an account's connections, across the processes of a
host: a System V semaphore set with one token per connection the account may have.

Four semaphores: the free tokens, the *head* (one waiter at a time stands at the front and
is the only one that touches the server while the line is full), the cap as the server
last said it, and the tokens still to be removed after a lowered cap (taken from the next
ones given back). A connect takes a token; the connection gives it back when it is really
closed, and the kernel hands it at once to the head, whatever its process. The kernel also
gives back what a dead process held (``SEM_UNDO``), so a ``kill -9`` loses nothing.

The server stays the truth. Connections held elsewhere (another host, a console, a process
without pa_dbhealth) take slots the line cannot see, so a token is permission to try: the
head retries a refused connect every :data:`PROBE_INTERVAL` seconds, and everyone behind it
waits without touching the server. The count heals itself when the server disagrees:

- a cap the server states (a 1226 message, the account's facts) replaces the line's
  (:meth:`Line.set_cap`);
- a connect that succeeds while no token is free mints one for its connection
  (:meth:`Line.adopt`): a token held by a connection that is gone, or a raised cap;
- more free tokens than the cap are trimmed (:meth:`Line.trim`);
- a process gives back only tokens it took (``Ticket``, :mod:`pa_dbhealth.core.connect`).

A line belongs to the user that made it (mode 0600); one made by anyone else is not used.
Where System V IPC is not available (another OS, a container without it), :func:`line_for`
returns None and callers wait as before.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import time

from pa_dbhealth.core import waits
from pa_dbhealth.core.line.sysv import (
    CAP,
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
    RETIRED,
    SEM_UNDO,
    SEMAPHORES,
    SETALL,
    TOKENS,
    SemBuf,
    key_of,
    owned_by_me,
    timespec,
)
from pa_dbhealth.core.line.sysv import libc as c_library

logger = logging.getLogger("pa_dbhealth.line")

PROBE_INTERVAL = 0.05  # the head tries the server at most 20 times a second


class Line:
    """The line of one account. Each method is one or two system calls."""

    def __init__(self, semid: int, key: int) -> None:
        self.semid = semid
        self.key = key
        self.removed = False

    def _op(self, *ops: tuple[int, int, int], timeout: float | None = None) -> bool:
        """Apply ``(semaphore, change, flags)`` operations atomically; False when they would
        wait (``IPC_NOWAIT``), the timeout passed, or the line was removed meanwhile."""
        buffer = (SemBuf * len(ops))(*(SemBuf(*op) for op in ops))
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

    # --- tokens -------------------------------------------------------------------------

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

    def adopt(self) -> None:
        """Mint a token for a connection the server let in while none was free (a token held
        by a connection that is gone, a raised cap): the count heals, the extra is trimmed
        when it comes back."""
        self._op((TOKENS, 1, 0), (TOKENS, -1, SEM_UNDO))
        waits.count(waits.REPAIRS, waits.ADOPT)
        logger.warning(
            "the line of connections was wrong: the server let a connection in while no "
            "token was free; a token was added for it"
        )

    def retire(self) -> None:
        """Remove the token this process holds from the line, given back to nobody: the
        server refused its holder, so the line had more tokens than the server has slots
        (held outside the line: a console, another host). A later connect the server lets
        in while none is free mints one again (:meth:`adopt`, :meth:`heal`)."""
        self._op((DEBT, -1, IPC_NOWAIT))  # a lowered cap's debt, if any, is paid by it
        self._op((TOKENS, 1, SEM_UNDO), (TOKENS, -1, IPC_NOWAIT), (RETIRED, 1, IPC_NOWAIT))
        waits.count(waits.REPAIRS, waits.RETIRE)
        logger.warning(
            "the line of connections was wrong: the server refused a connect that held a "
            "token (slots held outside pa_dbhealth); the token was removed"
        )

    def trim(self) -> int:
        """Remove free tokens beyond the cap; how many were removed."""
        excess = self.free - self.cap
        if excess <= 0 or self.cap < 1:
            return 0
        if not self._op((TOKENS, -excess, IPC_NOWAIT)):
            return 0
        waits.count(waits.REPAIRS, waits.TRIM)
        logger.warning(
            "the line of connections was wrong: %d free tokens for a cap of %d; %d removed",
            excess + self.cap,
            self.cap,
            excess,
        )
        return excess

    def heal(self, cap: int | None, in_use: int) -> int:
        """The server's word, from a connection that holds its token: the account's cap and
        how many connections it has. The free tokens become the free slots, whoever holds
        the others (outsiders included); the change (+ added, - removed)."""
        if cap and self._store_cap(cap) is not None:
            self._op((DEBT, -self._get(GETVAL, DEBT), IPC_NOWAIT))
        retired = self._get(GETVAL, RETIRED)
        if retired:  # what was retired is counted again, from the server's word
            self._op((RETIRED, -retired, IPC_NOWAIT))
        change = max(self.cap - in_use, 0) - self.free
        if change == 0 or not self._op((TOKENS, change, IPC_NOWAIT)):
            return 0
        waits.count(waits.REPAIRS, waits.HEAL)
        logger.warning(
            "the line of connections was wrong: %d free tokens for %d free slots on the "
            "server; now %d",
            self.free - change,
            self.free,
            self.free,
        )
        return change

    # --- the head -----------------------------------------------------------------------

    @property
    def retired(self) -> bool:
        """Whether tokens were retired since the line last heard the server's count: the
        next connect asks it (a refusal may have come from a connection closing late)."""
        return self._get(GETVAL, RETIRED) > 0

    def take_head(self, timeout: float) -> bool:
        """Stand at the head, behind everyone who came first: up to ``timeout`` seconds."""
        if timeout <= 0:
            return self._op((HEAD, -1, IPC_NOWAIT | SEM_UNDO))
        return self._op((HEAD, -1, SEM_UNDO), timeout=timeout)

    def leave_head(self) -> None:
        self._op((HEAD, 1, SEM_UNDO))

    # --- the cap ------------------------------------------------------------------------

    @property
    def cap(self) -> int:
        return self._get(GETVAL, CAP)

    def set_cap(self, cap: int) -> bool:
        """Make the line's cap the server's: tokens added or removed by the difference
        (those held now are trimmed when they come back). True when it changed."""
        old = self._store_cap(cap)
        if old is None:
            return False
        if cap > old:
            self._op((TOKENS, cap - old, IPC_NOWAIT))
        else:
            owed = old - cap
            removed = min(owed, self.free)
            if removed and not self._op((TOKENS, -removed, IPC_NOWAIT)):
                removed = 0
            if owed > removed:  # held now: removed as they come back
                self._op((DEBT, owed - removed, IPC_NOWAIT))
        waits.count(waits.REPAIRS, waits.SET_CAP)
        logger.warning("the account's cap changed on the server: %d, was %d", cap, old)
        return True

    def _store_cap(self, cap: int) -> int | None:
        """Write the server's cap (compare-and-set against a racing process); the old one,
        or None when nothing changed."""
        old = self.cap
        if cap == old or not 1 <= cap <= MAX_TOKENS or old < 1:
            return None
        if not self._op((CAP, -old, IPC_NOWAIT), (CAP, 0, IPC_NOWAIT), (CAP, cap, IPC_NOWAIT)):
            return None
        return old

    # --- figures ------------------------------------------------------------------------

    @property
    def waiting(self) -> int:
        """How many threads, in all processes, wait in the line now: those behind the head,
        and the head itself while it waits for a token (a head refused with a token retires
        it and waits for another: it never holds one while it waits)."""
        return max(self._get(GETNCNT, TOKENS), 0) + max(self._get(GETNCNT, HEAD), 0)

    @property
    def someone_waits(self) -> bool:
        """Whether a connect, in any process, stands in the line now (one system call): the
        head is taken, by a waiter or a head between two attempts at the server."""
        return self._get(GETVAL, HEAD) == 0

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
            values = (ctypes.c_ushort * SEMAPHORES)(tokens, 1, tokens, 0, 0)
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
