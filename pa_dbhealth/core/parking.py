"""Keep a connection while nobody waits for one; give it up the moment someone does.

With ``PARK``, a face that is done with a connection (Django at the end of a request, even
with ``CONN_MAX_AGE = 0``) parks it here with its token of the account's line instead of
closing it, and the next connect of the process to the same database takes it back: no
connect, no round trip. It is parked only while another token of the line is free, so one
always is. A parked connection costs the account a slot, so it is given up (its token given
back, then closed) as soon as a connect of any process of the host stands in the line
(:attr:`~pa_dbhealth.core.line.Line.someone_waits`), or when it has been idle for the idle
limit. A releaser thread watches the line every :data:`WATCH_INTERVAL` seconds, and only
while something is parked.

One lock per process guards the lot: a connection is either parked (in the lot) or in use
(taken out by exactly one thread, its owner, who may use or close it), never both. The
releaser closes only what it has taken out under that lock, so it never closes a
connection in use. Only a connection a fresh one would be indistinguishable from may be
parked (the face decides, with the one reuse rule), and only one that holds a token: the
line is what tells a parked connection that someone waits.

A forked child inherits the parent's parked connections but not their tokens: it forgets
them without closing them (closing would end the parent's sessions).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
import time
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from pa_dbhealth.core.connect import Ticket
from pa_dbhealth.core.line import PROBE_INTERVAL, Line
from pa_dbhealth.core.passing import HEADS, Passed

logger = logging.getLogger("pa_dbhealth.parking")

WATCH_INTERVAL = 0.003  # seconds between two looks at the line while something is parked
# A head that stands in the line this long while nobody is blocked has a token the server
# refused (slots held outside the line): it needs a parked slot too.
HEAD_PATIENCE = 0.02
# After that, slots are held outside the line (the line has a token the server has not), so
# parking on that line stops for this long: every connect of a worker with nothing parked
# would otherwise be refused and wait for a release.
OUTSIDE_BACKOFF = 30.0


@dataclass(frozen=True)
class Parked:
    """A connection nobody uses now, with what it takes to use it again."""

    raw: Any  # the driver's connection
    ticket: Ticket  # its token of the account's line
    opened_with: Any  # what it was opened with: only an identical connect takes it
    idle_since: float  # time.monotonic() of its last use
    idle_limit: float | None  # seconds idle after which it is given up (None: never)

    def idle_out(self, now: float) -> bool:
        """Whether it has been idle for its idle limit."""
        return self.idle_limit is not None and now - self.idle_since >= self.idle_limit


class Lot:
    """The parked connections of this process, by the key a face gives (a database)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parked: dict[Hashable, list[Parked]] = {}
        self._releaser: threading.Thread | None = None
        self._head_since: dict[int, float] = {}  # line key -> head seen standing since
        self._outside_until: dict[int, float] = {}  # line key -> no parking until then
        self.released = 0  # connections given up while parked (figures, tests)
        self.taken = 0  # connections taken back for use

    def park(self, key: Hashable, parked: Parked) -> bool:
        """Park ``parked``; False when someone already waits in the line, or when it holds
        the last free token (then the caller closes it as usual). So the host's processes
        park at most cap - 1 connections, and a process without one parked (more workers
        than the cap) finds a free token instead of waiting for a release and a connect."""
        line, now = parked.ticket.line, time.monotonic()
        if now < self._outside_until.get(line.key, 0.0) or parked.idle_out(now):
            return False
        if line.someone_waits:  # a thread of this process at the head takes it as it is
            return pass_on(key, parked)
        if line.free < 1:
            return False
        with self._lock:
            self._parked.setdefault(key, []).append(parked)
            if self._releaser is None:
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
            stack = self._parked.get(key, [])
            for index in range(len(stack) - 1, -1, -1):
                if stack[index].opened_with == opened_with:
                    found = stack.pop(index)
                    break
            else:
                return None
        if found.ticket.line.someone_waits:
            if not pass_on(key, found):
                give_up(found)
            with self._lock:
                self.released += 1
            return None
        with self._lock:
            self.taken += 1
        return found

    def count(self, key: Hashable | None = None) -> int:
        """How many connections are parked (for ``key``, or in all)."""
        with self._lock:
            if key is not None:
                return len(self._parked.get(key, []))
            return sum(len(stack) for stack in self._parked.values())

    def release_due(self, now: float | None = None, *, everything: bool = False) -> int:
        """Give up the parked connections that are due (or all): those idle for their limit,
        and the oldest of each line a connect of the host needs a slot of; how many."""
        now = time.monotonic() if now is None else now
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
                give_up(parked)
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
        self._outside_until[line.key] = now + OUTSIDE_BACKOFF
        return True

    def _watch(self) -> None:
        """The releaser: while anything is parked, give up what is due."""
        while True:
            time.sleep(WATCH_INTERVAL)
            self.release_due()
            with self._lock:
                if not self._parked:
                    self._releaser = None
                    return

    def forget_inherited(self) -> None:
        """In a forked child: the parent's connections are not this process's to use or
        close; they are kept referenced (a dropped driver connection would say goodbye to
        the server on the parent's behalf) and never used."""
        self._lock = threading.Lock()
        for stack in self._parked.values():
            _inherited.extend(stack)
        self._parked = {}
        self._head_since = {}
        self._outside_until = {}
        self._releaser = None


def pass_on(key: Hashable, parked: Parked) -> bool:
    """Pass ``parked`` to this process's thread at the head of its line, then give its
    token back (to that head, the one blocked on it: :mod:`pa_dbhealth.core.passing`);
    False when no thread of this process is the head (the caller gives it up)."""
    passed = Passed(parked.raw, key, parked.opened_with)
    if not HEADS.deposit(parked.ticket.line.key, passed):
        return False
    parked.ticket.give_back()
    logger.debug("passed a parked connection to the head of the line")
    return True


def give_up(parked: Parked) -> None:
    """Close a parked connection and give its token back (to the head of the line): the
    close first, as the backend does, so the server has let it go when the head connects
    (a head refused with a token would retire it)."""
    try:
        with contextlib.suppress(Exception):  # closed all the same: the server may have gone
            parked.raw.close()
    finally:
        parked.ticket.give_back()
    logger.debug("gave up a parked connection")


_inherited: list[Parked] = []
LOT = Lot()

atexit.register(LOT.release_due, everything=True)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=LOT.forget_inherited)
