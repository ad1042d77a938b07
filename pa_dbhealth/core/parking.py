"""Keep a connection while nobody waits for one; give it up the moment someone does.

With ``PARK``, a face that is done with a connection (Django at the end of a request, even
with ``CONN_MAX_AGE = 0``) parks it here with its token of the account's line, and the next
connect of the process to the same database takes it back: no connect. It is given up
(closed, then its token back) or passed to this process's head of the line
(:mod:`pa_dbhealth.core.passing`) as soon as a connect of any process of the host stands in
the line, at the idle limit, when the account is full with part of it held outside the line,
and when the site idles with no slot free (a console then finds one: :meth:`Lot.check_server`).
A releaser thread does this (:mod:`pa_dbhealth.core.releaser`).

One lock per process guards the lot: a connection is either parked or in use by exactly one
thread, its owner, never both; the releaser closes only what it has taken out under the
lock. A forked child forgets its parent's parked connections without closing them. What the
lot keeps is in the registry of holders (:mod:`pa_dbhealth.core.kept`).
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from collections.abc import Hashable
from typing import Any

from pa_dbhealth.core.kept import KeptList
from pa_dbhealth.core.line import PROBE_INTERVAL, Line
from pa_dbhealth.core.parked import Parked, give_up, pass_on
from pa_dbhealth.core.recount import AccountCounts
from pa_dbhealth.core.releaser import Releasing

__all__ = ["LOT", "Lot", "Parked", "give_up"]

# A head that stands in the line this long while nobody is blocked has a token the server
# refused (slots held outside the line): it needs a parked slot too.
HEAD_PATIENCE = 0.02
BORROW_WAIT = 0.05  # seconds a connect waits for a parked connection out for a count


class Lot(Releasing):
    """The parked connections of this process, by the key a face gives (a database)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parked: dict[Hashable, list[Parked]] = {}
        self._releaser: threading.Thread | None = None
        self._head_since: dict[int, float] = {}  # line key -> head seen standing since
        self._checked_at: dict[int, float] = {}  # line key -> last count of the account
        self._check_every: dict[int, float] = {}  # line key -> seconds to its next count
        self._counts = AccountCounts()  # what the counts of the account said
        self._borrowed: dict[Hashable, int] = {}  # out of the lot for a count, by key
        self._counting: dict[int, Line] = {}  # lines this process counts the account of
        self._emptied = 0  # times everything was given up (atexit, tests)
        self._returned = threading.Condition(self._lock)  # a borrowed one is back
        self._parked_again = threading.Condition(self._lock)  # for a lingering releaser
        self._woken = True  # the releaser's last nap ended as a connect stood in the line
        self._listed = KeptList()  # what it keeps, in the registry of holders
        self.released = 0  # connections given up while parked (figures, tests)
        self.taken = 0  # connections taken back for use

    def park(self, key: Hashable, parked: Parked) -> bool:
        """Park ``parked``; False when someone already waits in the line (then it is passed
        to this process's head, or the caller closes it as usual), or at its idle limit.
        The last free token is parked too: while the site is busy, every slot serves
        without a connect; once it idles, the counts give one back for a console
        (:class:`~pa_dbhealth.core.recount.AccountCounts`)."""
        line, now = parked.ticket.line, time.monotonic()
        if parked.idle_out(now):
            return False
        if line.someone_waits:  # a thread of this process at the head takes it as it is
            return pass_on(key, parked)
        self._listed.note(parked)
        with self._lock:
            self._parked.setdefault(key, []).append(parked)
            if self._releaser is not None:
                self._parked_again.notify()  # a lingering releaser goes on (else: no-op)
            else:
                self._releaser = threading.Thread(
                    target=self._watch, name="pa_dbhealth-parking", daemon=True
                )
                self._releaser.start()
        return True

    def take(self, key: Hashable, opened_with: Any) -> Parked | None:
        """The most recently parked connection of ``key`` opened with ``opened_with``, now
        the caller's; None when there is none, or when someone waits in the line (the
        caller then stands in the line behind them, and the connection is given up)."""
        with self._lock:
            found = self._find(key, opened_with)
            if found is None and self._borrowed.get(key):  # out for a count: back in a moment
                self._returned.wait(BORROW_WAIT)
                found = self._find(key, opened_with)
            if found is None:
                return None
        if found.ticket.line.someone_waits:
            if not pass_on(key, found):
                give_up(found, "a connect waits in the line")
            with self._lock:
                self.released += 1
            return None
        with self._lock:
            self.taken += 1
        found.ticket.line.note_taken()
        return found

    def _find(self, key: Hashable, opened_with: Any) -> Parked | None:
        """Out of the lot: the most recently parked connection of ``key`` opened with
        ``opened_with`` (the lock held). No empty stack is left behind: the releaser's
        round reads each stack's first."""
        stack = self._parked.get(key, [])
        for index in range(len(stack) - 1, -1, -1):
            if stack[index].opened_with == opened_with:
                found = stack.pop(index)
                if not stack:
                    del self._parked[key]
                return found
        return None

    def count(self, key: Hashable | None = None) -> int:
        """How many connections are parked (for ``key``, or in all)."""
        with self._lock:
            if key is not None:
                return len(self._parked.get(key, [])) + self._borrowed.get(key, 0)
            return sum(map(len, self._parked.values())) + sum(self._borrowed.values())

    def release_due(self, now: float | None = None, *, everything: bool = False) -> int:
        """Give up the parked connections that are due (or all): those idle for their limit,
        and the oldest of each line a connect of the host needs a slot of; how many."""
        now = time.monotonic() if now is None else now
        if everything:  # what is out for a count is given up as it comes back
            self._emptied += 1
        leaving: list[tuple[Hashable, Parked, bool]] = []  # and whether a waiter needs it
        needs: dict[int, bool] = {}  # by line: one given up this round for its waiter
        with self._lock:
            if everything:  # what is parked next is counted afresh, every CHECK_INTERVAL
                self._check_every.clear()
            for key, stack in list(self._parked.items()):
                staying: list[Parked] = []
                for parked in stack:
                    line = parked.ticket.line
                    if line.key not in needs:
                        needs[line.key] = self._needed(line, now)
                    due = everything or parked.idle_out(now)
                    if due or needs[line.key]:
                        leaving.append((key, parked, not due))  # not due: needed, passable
                        needs[line.key] = False  # one per round: the next round looks again
                    else:
                        staying.append(parked)
                if staying:
                    self._parked[key] = staying
                else:
                    del self._parked[key]
            self.released += len(leaving)
        for key, parked, needed in leaving:  # out of the lot: this thread is their owner now
            if not (needed and pass_on(key, parked)):
                why = "everything let go" if everything else "the idle limit"
                give_up(parked, "a connect waits in the line" if needed else why)
        return len(leaving)

    def _needed(self, line: Line, now: float) -> bool:
        """Whether a connect of the host needs a slot of ``line`` now: one is blocked in the
        line, or its head has stood there HEAD_PATIENCE (refused with a token)."""
        if line.waiting > 0:
            self._head_since.pop(line.key, None)
            return True
        if not line.someone_waits:
            self._head_since.pop(line.key, None)
            return False
        since = self._head_since.setdefault(line.key, now)
        if now - since < HEAD_PATIENCE:
            return False
        # Its next try at the server comes within PROBE_INTERVAL: wait for it before
        # giving up another one.
        self._head_since[line.key] = now + PROBE_INTERVAL
        return True

    def forget_inherited(self) -> None:
        """In a forked child: the parent's connections are not this process's to use or
        close; they are kept referenced (a dropped driver connection would say goodbye to
        the server on the parent's behalf) and never used."""
        self._lock = threading.Lock()
        for stack in self._parked.values():
            _inherited.extend(stack)
        self._parked = {}
        self._head_since = {}
        self._checked_at, self._borrowed, self._counts = {}, {}, AccountCounts()
        self._check_every = {}
        self._counting = {}  # the parent's roles: the kernel keeps them for the parent
        self._returned = threading.Condition(self._lock)
        self._parked_again = threading.Condition(self._lock)
        self._releaser = None
        self._listed.forget_inherited()


_inherited: list[Parked] = []
LOT = Lot()

atexit.register(LOT.release_due, everything=True)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=LOT.forget_inherited)
