"""The releaser of the lot (:mod:`pa_dbhealth.core.parking`): a thread, alive while
something is parked (and :data:`LINGER` after), that gives up what is due and counts the
account on a parked connection.

It sleeps in the kernel until a connect stands in the account's line, or until its next
round is due: every :data:`CHECK_INTERVAL` in the one process of the host that counts the
account (``Line.become_counter``), up to :data:`SETTLED_CHECK_INTERVAL` while its counts
keep finding the same, every :data:`BYSTANDER_INTERVAL` (or the first idle
limit) in the others, which look that often whether the counter's role is free. It closes
only what it has taken out of the lot under the lot's lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Hashable

from pa_dbhealth.core.kept import KeptList
from pa_dbhealth.core.line import Line
from pa_dbhealth.core.parked import Parked, give_up
from pa_dbhealth.core.recount import AccountCounts

logger = logging.getLogger("pa_dbhealth.parking")

WATCH_INTERVAL = 0.003  # seconds at least between two rounds of the releaser
# Seconds between two counts of the account on a parked connection: a console or a
# scheduled task connects outside the line, and only the server knows. Two counts in a row
# must say so (a connection closing just now may still be listed after its token is back).
CHECK_INTERVAL = 0.03
# Seconds at most between two counts while they keep finding the same (a site that idles):
# the interval doubles from CHECK_INTERVAL after each settled count, and is CHECK_INTERVAL
# again after any other. The server is shared: an idle site asks it about 4 times a second,
# not 33, and a slot taken outside meanwhile is seen within this and CHECK_INTERVAL.
SETTLED_CHECK_INTERVAL = 0.24
# Seconds at most between two rounds of a releaser whose process does not count the account
# (another one does): it still wakes at once when a connect stands in the line, and at the
# idle limit of what it parked; this often it looks whether the counter's role is free.
BYSTANDER_INTERVAL = 0.3
# Seconds the releaser outlives the last parked connection: a site between two requests
# parks again in a moment, and a thread started for each park cost more than the request.
LINGER = 1.0


class Releasing:
    """The releaser's part of :class:`~pa_dbhealth.core.parking.Lot`: its thread's rounds
    and the counts of the account. The state is the lot's (what each attribute holds is
    said where ``Lot.__init__`` sets it), guarded by its lock."""

    _lock: threading.Lock
    _parked: dict[Hashable, list[Parked]]
    _releaser: threading.Thread | None
    _checked_at: dict[int, float]
    _check_every: dict[int, float]
    _counts: AccountCounts
    _borrowed: dict[Hashable, int]
    _counting: dict[int, Line]
    _emptied: int
    _returned: threading.Condition
    _parked_again: threading.Condition
    _woken: bool
    _listed: KeptList
    released: int

    def release_due(self, now: float | None = None, *, everything: bool = False) -> int:
        raise NotImplementedError  # the lot's: what is due, given up

    def check_server(self, now: float | None = None) -> int:
        """When due, count the account on a parked connection of each line this process
        counts (one process of the host does: ``Line.become_counter``): CHECK_INTERVAL
        after the last count, up to SETTLED_CHECK_INTERVAL while the counts settle. Two
        counts in a row that find it full, part of it held outside the line (a console, a
        task), give that connection up, so whoever connects outside finds a slot; so does
        a count that finds no token free and no connection taken since the last one (the
        site idles), and a count the server cannot answer. The counts heal the line too
        (:class:`~pa_dbhealth.core.recount.AccountCounts`). How many were given up."""
        now = time.monotonic() if now is None else now
        given_up, emptied = 0, self._emptied
        for key, parked in self._borrow_for_check(now):
            line = parked.ticket.line
            try:
                why = self._counts.why_give_up(line, parked.raw)
            except Exception:  # given up below: out of the lot, it must not be lost
                logger.exception("counting the account on a parked connection failed")
                why = "the count failed"
            keep = why is None
            with self._lock:
                self._pace(line, settled=keep and self._counts.settled(line))
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

    def _pace(self, line: Line, *, settled: bool) -> None:
        """The next count of ``line``'s account (the lock held): later after a settled
        count, up to SETTLED_CHECK_INTERVAL; CHECK_INTERVAL after any other."""
        every = self._check_every.get(line.key, CHECK_INTERVAL)
        every = min(2 * every, SETTLED_CHECK_INTERVAL) if settled else CHECK_INTERVAL
        self._check_every[line.key] = every

    def _borrow_for_check(self, now: float) -> list[tuple[Hashable, Parked]]:
        """One parked connection out of the lot for each line due a count, now the
        caller's (it puts it back, or gives it up)."""
        borrowed: list[tuple[Hashable, Parked]] = []
        with self._lock:
            for key, stack in list(self._parked.items()):
                line = stack[0].ticket.line
                every = self._check_every.get(line.key, CHECK_INTERVAL)
                if now - self._checked_at.get(line.key, 0.0) < every:
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
            self._check_every.pop(line_key, None)  # counted afresh when it counts again

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
        in it (the kernel wakes this thread at once) or the next round is due: the next
        count in the process that counts the account, else BYSTANDER_INTERVAL or the first
        idle limit, whichever comes first. A site that idles with connections parked wakes
        one process about 4 times a second (30 while the counts change), the others about
        3 times. WATCH_INTERVAL first only after a round that someone in the line woke:
        rounds stay that far apart while a connect stands there, and an idle round is one
        wakeup, not two."""
        if self._woken:
            time.sleep(WATCH_INTERVAL)
        with self._lock:
            parked = [p for stack in self._parked.values() for p in stack]
            lines = {p.ticket.line.key: p.ticket.line for p in parked}
            if len(lines) != 1:
                self._woken = True  # no kernel wait on several lines: WATCH_INTERVAL it is
                return
            (line,) = lines.values()
            counter = self._is_counter(line)
            nap = self._check_every.get(line.key, CHECK_INTERVAL) if counter else BYSTANDER_INTERVAL
        for one in parked:
            if one.idle_limit is not None:
                nap = min(nap, one.idle_since + one.idle_limit - time.monotonic())
        self._woken = line.until_someone_waits(max(nap, 0.0))
