"""A connect in the account's line (:mod:`pa_dbhealth.core.line`): a token at once when one
is free and nobody waits; else behind the others, where only the head tries the server, at
most every :data:`~pa_dbhealth.core.line.PROBE_INTERVAL`. A connect the server lets in while
no token was free mints one and recounts the account (the line heals); each token is a
:class:`Ticket`, given back only by the process that took it."""

from __future__ import annotations

import os
import time
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from pa_dbhealth.core import line as lines
from pa_dbhealth.core import waits
from pa_dbhealth.core.errors import classify
from pa_dbhealth.core.handoff import fit_to_receive
from pa_dbhealth.core.passing import HEADS
from pa_dbhealth.core.recount import recount
from pa_dbhealth.core.refusals import HANDOFF, RETRY, Target, refusal, said_give_up

T = TypeVar("T")

QUICK_RETRIES = (0.003, 0.01, 0.04)  # seconds: a token holder refused tries again this soon


class Ticket:
    """A token of the line, given back exactly once, by the process that took it: by
    :meth:`give_back`, or when its connection object is garbage-collected. A forked child
    that inherits the connection inherits no token: its give-back does nothing."""

    def __init__(self, line: lines.Line) -> None:
        """Made as its token is taken."""
        line.note_taken()
        self.line = line
        self.pid = os.getpid()
        self.passed = False  # its connection was passed from the lot, not opened
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._done = False

    def bind(self, connection: Any) -> None:
        try:
            self._finalizer = weakref.finalize(connection, self.give_back)
        except TypeError:  # a connection type without weak references
            self._finalizer = None
            return
        # Not at exit, while the connection is still open: the kernel gives the token
        # back as the process ends (SEM_UNDO), as its sockets close.
        self._finalizer.atexit = False

    @property
    def done(self) -> bool:
        """Given back (or retired) already: its connection is closed."""
        return self._done

    def give_back(self) -> None:
        if self._take_away():
            self.line.give_back()

    def retire(self) -> None:
        """The server refused this token's holder: the token leaves the line for good."""
        if self._take_away():
            self.line.retire()

    def _take_away(self) -> bool:
        if self._done or self.pid != os.getpid():
            return False
        self._done = True
        if self._finalizer is not None:
            self._finalizer.detach()
        return True


def connect_in_line(
    line: lines.Line,
    open_: Callable[[], T],
    target: Target,
    started: float,
    deadline: float,
    refused: BaseException | None,
) -> tuple[T, Ticket | None]:
    head = _Head(line, open_, target, started, deadline)
    if refused is not None:
        head.note_refusal(refused)
    elif line.enter():  # a token at once, nobody waiting
        head.ticket = Ticket(line)
        found = head.attempt()
        if found is not None:
            return found
    waits.began(lined=True)
    if not line.take_head(deadline - time.monotonic()):
        return head.last_word()  # the line did not move within the budget
    reuse = target.reuse is not None
    if reuse:
        HEADS.stand(line.key)
    try:
        return head.serve()
    finally:
        if reuse:
            HEADS.leave(line.key)
        line.leave_head()


def refused_or_raise(exc: BaseException, target: Target, ticket: Ticket | None) -> None:
    try:
        refusal(exc, target)
    except BaseException:
        if ticket is not None:
            ticket.give_back()
        raise


def _bound(connection: T, ticket: Ticket) -> T:
    ticket.bind(connection)
    return connection


class _Head:
    """One connect in the line: its attempts, its token, and when it may try again."""

    def __init__(
        self,
        line: lines.Line,
        open_: Callable[[], Any],
        target: Target,
        started: float,
        deadline: float,
    ) -> None:
        self.line, self.open_, self.target = line, open_, target
        self.started, self.deadline = started, deadline
        self.ticket: Ticket | None = None
        self.refused: BaseException | None = None
        self.tried_at = started
        self.attempts = 0
        self.outside = False  # refused while holding a token: slots held outside the line

    def serve(self) -> tuple[Any, Ticket | None]:
        """At the head: try the server at most every PROBE_INTERVAL until a connect
        succeeds or the budget is spent; a token given back meanwhile is taken at once."""
        while True:
            now = time.monotonic()
            if self.line.take(min(lines.PROBE_INTERVAL, self.deadline - now)):
                self.ticket = Ticket(self.line)  # else: the line stood still; probe the server
                found = self.passed()
                if found is not None:
                    return found
            found = self.attempt()
            if found is not None:
                return found

    def passed(self) -> tuple[Any, Ticket | None] | None:
        """The connection the lot passed with the token just taken, when it was opened as
        this connect would open one and the server still has it (else it is closed)."""
        passed = HEADS.collect(self.line.key)
        if passed is None or self.ticket is None:
            return None
        if not fit_to_receive(passed.raw, (passed.key, passed.opened_with), self.target.reuse):
            return None
        self.ticket.passed = True
        self.target.count(HANDOFF)
        waits.count(waits.HANDOFFS)
        return _bound(passed.raw, self.ticket), self.ticket

    def last_word(self) -> tuple[Any, Ticket | None]:
        """The budget is spent before reaching the head: the server decides, with one
        attempt when this connect has made none."""
        if self.refused is None:
            found = self.attempt()
            if found is not None:
                return found
        self.give_up()
        raise AssertionError("unreachable")  # pragma: no cover

    def attempt(self) -> tuple[Any, Ticket | None] | None:
        """One connect: the connection and its ticket, or None when refused at the cap. A
        token holder the server refuses tries again three times within 60 ms (a
        connection closed just now may not be gone on the server yet); refused still, the
        slots are held outside the line, and its token is retired."""
        quick = list(QUICK_RETRIES) if self.ticket is not None else []
        while True:
            try:
                connection = self.open_()
                break
            except Exception as exc:
                refused_or_raise(exc, self.target, self.ticket)
                if quick and time.monotonic() + quick[0] < self.deadline:
                    time.sleep(quick.pop(0))
                    continue
                if self.ticket is not None:
                    self.ticket.retire()
                    self.ticket, self.outside = None, True
                self.note_refusal(exc)
                return None
        self.attempts += 1
        if self.ticket is None:  # the server let it in while the line said none was free
            self.line.adopt()
            self.ticket = Ticket(self.line)
            recount(self.line, connection)  # the free tokens become the server's free slots
        elif self.line.retired:  # tokens were retired: are their slots still held outside?
            recount(self.line, connection)
        return _bound(connection, self.ticket), self.ticket

    def note_refusal(self, exc: BaseException) -> None:
        """Counted and logged as a retry; past the deadline, the give-up."""
        self.attempts += 1
        self.refused, self.tried_at = exc, time.monotonic()
        self.outside = self.outside or self.ticket is not None
        if self.tried_at >= self.deadline:
            self.give_up()
        self.target.count(RETRY)
        self.target.logger.debug(
            "connect to %s refused, attempt %d: %s; waiting in line",
            self.target.name,
            self.attempts,
            classify(exc).short,
        )

    def give_up(self) -> None:
        if self.ticket is not None:
            self.ticket.give_back()
        assert self.refused is not None
        elapsed = time.monotonic() - self.started
        said_give_up(
            self.target, classify(self.refused), self.attempts, elapsed, outside=self.outside
        )
        raise self.refused
