"""Keep a connection while nobody waits for one; give it up the moment someone does.

With ``PARK``, a face that is done with a connection (Django at the end of a request, even
with ``CONN_MAX_AGE = 0``) parks it here with its token of the account's line, and the next
connect of the process to the same database takes it back: no connect. It is given up
(closed, then its token back) or passed to this process's head of the line
(:mod:`pa_dbhealth.core.passing`) as soon as a connect of any process of the host stands in
the line, at the idle limit, when the account is full with part of it held outside the line,
and when the site idles with no slot free (a console then finds one: :meth:`Lot.check_server`).
A releaser thread, alive while something is parked (and :data:`LINGER` after), does this; it
sleeps in the kernel until a connect stands in the line, or for :data:`CHECK_INTERVAL` at
most.

One lock per process guards the lot: a connection is either parked or in use by exactly one
thread, its owner, never both; the releaser closes only what it has taken out under the
lock. A forked child forgets its parent's parked connections without closing them. What the
lot keeps is in the registry of holders (:mod:`pa_dbhealth.core.kept`).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Hashable
from typing import Any

from pa_dbhealth.core.kept import KeptList
from pa_dbhealth.core.line import PROBE_INTERVAL, Line
from pa_dbhealth.core.parked import Parked, give_up, pass_on
from pa_dbhealth.core.recount import AccountCounts

__all__ = ["LOT", "Lot", "Parked", "give_up"]

logger = logging.getLogger("pa_dbhealth.parking")

WATCH_INTERVAL = 0.003  # seconds at least between two rounds of the releaser
# A head that stands in the line this long while nobody is blocked has a token the server
# refused (slots held outside the line): it needs a parked slot too.
HEAD_PATIENCE = 0.02
# Seconds between two counts of the account on a parked connection: a console or a
# scheduled task connects outside the line, and only the server knows. Two counts in a row
# must say so (a connection closing just now may still be listed after its token is back).
CHECK_INTERVAL = 0.03
# Seconds at most between two rounds of a releaser whose process does not count the account
# (another one does): it still wakes at once when a connect stands in the line, and at the
# idle limit of what it parked; this often it looks whether the counter's role is free.
BYSTANDER_INTERVAL = 0.3
BORROW_WAIT = 0.05  # seconds a connect waits for a parked connection out for a count
# Seconds the releaser outlives the last parked connection: a site between two requests
# parks again in a moment, and a thread started for each park cost more than the request.
LINGER = 1.0


class Lot:
    """The parked connections of this process, by the key a face gives (a database)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parked: dict[Hashable, list[Parked]] = {}
        self._releaser: threading.Thread | None = None
        self._head_since: dict[int, float] = {}  # line key -> head seen standing since
        self._checked_at: dict[int, float] = {}  # line key -> last count of the account
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

    def check_server(self, now: float | None = None) -> int:
        """Every CHECK_INTERVAL, count the account on a parked connection of each line this
        process counts (one process of the host does: ``Line.become_counter``). Two counts
        in a row that find it full, part of it held outside the line (a console, a task),
        give that connection up, so whoever connects outside finds a slot; so does a count
        that finds no token free and no connection taken since the last one (the site
        idles), and a count the server cannot answer. The counts heal the line too
        (:class:`~pa_dbhealth.core.recount.AccountCounts`). How many were given up."""
        now = time.monotonic() if now is None else now
        given_up, emptied = 0, self._emptied
        for key, parked in self._borrow_for_check(now):
            try:
                why = self._counts.why_give_up(parked.ticket.line, parked.raw)
            except Exception:  # given up below: out of the lot, it must not be lost
                logger.exception("counting the account on a parked connection failed")
                why = "the count failed"
            keep = why is None
            with self._lock:
                self._borrowed[key] -= 1
                keep = keep and self._emptied == emptied  # not after everything was let go
                if keep:
                    self._parked.setdefault(key, []).insert(0, parked)
                else:
                    self.released += 1
                self._returned.notify_all()
            if not keep:
                give_up(parked, why or "everything let go")
                given_up += 1
        return given_up

    def _borrow_for_check(self, now: float) -> list[tuple[Hashable, Parked]]:
        """One parked connection out of the lot for each line due a count, now the
        caller's (it puts it back, or gives it up)."""
        borrowed: list[tuple[Hashable, Parked]] = []
        with self._lock:
            for key, stack in list(self._parked.items()):
                line = stack[0].ticket.line
                if now - self._checked_at.get(line.key, 0.0) < CHECK_INTERVAL:
                    continue
                if not self._is_counter(line):
                    continue
                self._checked_at[line.key] = now
                borrowed.append((key, stack.pop(0)))  # the longest idle: not the next used
                self._borrowed[key] = self._borrowed.get(key, 0) + 1
                if not stack:
                    del self._parked[key]
        return borrowed

    def _is_counter(self, line: Line) -> bool:
        """Whether this process counts the account of ``line`` (the lock held): one process
        of the host does, the first to find the role free."""
        if line.key not in self._counting:
            if not line.become_counter():
                return False
            self._counting[line.key] = line
        return True

    def _stop_counting_idle_lines(self) -> None:
        """Leave the counter's role of each line this process has nothing parked on (the
        lock held), so a process that has counts instead."""
        parked_on = {p.ticket.line.key for stack in self._parked.values() for p in stack}
        for line_key in [k for k in self._counting if k not in parked_on]:
            self._counting.pop(line_key).leave_counter()

    def _watch(self) -> None:
        """The releaser: while anything is parked, give up what is due, and count the
        account from time to time."""
        while True:
            self._nap()
            try:
                self.release_due()
                self.check_server()
                self._listed.publish(time.monotonic())
            except Exception:  # a dead releaser would give nothing up again: say it, go on
                logger.exception("the releaser of parked connections failed a round")
            with self._lock:
                self._stop_counting_idle_lines()
                if not self._parked and not self._linger():
                    self._releaser = None
                    break
        self._listed.publish(time.monotonic(), final=True)

    def _linger(self) -> bool:
        """With nothing parked (the lock held): wait up to LINGER for a park; whether one
        came (the releaser goes on, even when a take has had it already) or not (it ends).
        A park that meets the end of the wait finds it lingering still: it is kept."""
        return self._parked_again.wait(LINGER) or bool(self._parked)

    def _nap(self) -> None:
        """WATCH_INTERVAL, then, when what is parked is on one line, until a connect stands
        in it (the kernel wakes this thread at once) or the next round is due: CHECK_INTERVAL
        in the process that counts the account, else BYSTANDER_INTERVAL or the first idle
        limit, whichever comes first. A site that idles with connections parked wakes one
        process about 30 times a second, the others about 3 times. WATCH_INTERVAL first
        only after a round that someone in the line woke: rounds stay that far apart while
        a connect stands there, and an idle round is one wakeup, not two."""
        if self._woken:
            time.sleep(WATCH_INTERVAL)
        with self._lock:
            parked = [p for stack in self._parked.values() for p in stack]
            lines = {p.ticket.line.key: p.ticket.line for p in parked}
            if len(lines) != 1:
                self._woken = True  # no kernel wait on several lines: WATCH_INTERVAL it is
                return
            (line,) = lines.values()
            nap = CHECK_INTERVAL if self._is_counter(line) else BYSTANDER_INTERVAL
        for one in parked:
            if one.idle_limit is not None:
                nap = min(nap, one.idle_since + one.idle_limit - time.monotonic())
        self._woken = line.until_someone_waits(max(nap, 0.0))

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
