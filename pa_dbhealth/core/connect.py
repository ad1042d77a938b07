"""The one connect policy of every face: what happens when the server refuses a connect.

A face (the Django backend's ``get_new_connection``, SQLAlchemy's ``do_connect``) calls
:func:`connect` with a function that opens one connection and a :class:`Target` naming the
database, its account and its budget; it gets the connection and its :class:`Ticket`.

- Only a connect refused because connections are used up (``kind.is_cap``: 1226 for the
  account's cap, 1203, 1040) is retried: nothing has been sent yet. Any other error is
  raised at once, and after the budget the last refusal is raised unchanged, so the face
  answers with its framework's own error (and the middleware or Flask with a 503).
- With the account's line (:mod:`pa_dbhealth.core.line`, MySQL), a connect takes a token
  first. When none is free, or the server refuses a token holder (slots held outside
  pa_dbhealth), it stands behind the others; only the head touches the server, at most
  every :data:`~pa_dbhealth.core.line.PROBE_INTERVAL`, whatever the number of waiters, and
  the head is served first when a slot frees. A 1226 teaches the cap, and the line opens
  then (the first refusal of a process is its only one outside the line).
- Without a line (PostgreSQL, ``LINE`` off, no System V IPC), the caller retries with
  jittered backoff (:mod:`pa_dbhealth.core.retry`) and may be handed a connection by a
  sibling thread (``wait``, :mod:`pa_dbhealth.core.handoff`).
- Inside :func:`~pa_dbhealth.core.retry.single_attempt` (a look) it tries once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pa_dbhealth.core import line as lines
from pa_dbhealth.core import liveness, vendors, waits, waits_host
from pa_dbhealth.core.errors import Classified, classify
from pa_dbhealth.core.retry import connect_with_retry, in_single_attempt

T = TypeVar("T")
logger = logging.getLogger("pa_dbhealth.connect")

# What a face counts (its own figures): a refused attempt that will be retried, a give-up,
# a look refused at the cap, a connection handed over by a sibling thread.
RETRY, GIVEUP, LOOK_REFUSED, HANDOFF = "retry", "giveup", "look_refused", "handoff"


def _ignore(event: str) -> None:
    return None


@dataclass(frozen=True)
class Target:
    name: str  # the database in log lines: "database 'default'", "mysql://app@host/app"
    account: tuple[str, str] | None  # (server, account) of its line; None: no line
    budget: float  # seconds to wait at the cap (CONNECT_RETRY)
    count: Callable[[str], None] = _ignore
    look_command: str = "python -m pa_dbhealth connections"  # names the holders, even at the cap
    logger: logging.Logger = logger  # the face's: retries at DEBUG, give-ups at WARNING
    registry_dir: Any = None  # the face's REGISTRY_DIR: the wait figures are written beside it


class Ticket:
    """A token of the line, given back exactly once, by the process that took it: by
    :meth:`give_back`, or when its connection object is garbage-collected. A forked child
    that inherits the connection inherits no token: its give-back does nothing."""

    def __init__(self, line: lines.Line) -> None:
        self.line = line
        self.pid = os.getpid()
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._done = False

    def bind(self, connection: Any) -> None:
        try:
            self._finalizer = weakref.finalize(connection, self.give_back)
        except TypeError:  # a connection type without weak references
            self._finalizer = None

    def give_back(self) -> None:
        if self._done or self.pid != os.getpid():
            return
        self._done = True
        if self._finalizer is not None:
            self._finalizer.detach()
        self.line.give_back()


def connect(
    open_: Callable[[], T], target: Target, *, wait: Callable[[float], T | None] | None = None
) -> tuple[T, Ticket | None]:
    """Open a connection with ``open_()``, waiting at the cap as the module says; a wait
    (from the first refusal or wait in line) is timed for :mod:`pa_dbhealth.core.waits`."""
    if in_single_attempt():
        return _once(open_, target), None
    waits_host.use(target.registry_dir)
    with waits.timing(target.budget):
        return _waiting(open_, target, wait)


def _waiting(
    open_: Callable[[], T], target: Target, wait: Callable[[float], T | None] | None
) -> tuple[T, Ticket | None]:
    started = time.monotonic()
    deadline = started + max(0.0, target.budget)
    if target.account is None:
        return _without_line(open_, target, deadline, wait), None
    line = lines.line_for(*target.account)
    refused: BaseException | None = None
    if line is None:  # the cap is not known yet: the first refusal says it
        try:
            return open_(), None
        except Exception as exc:
            _refusal(exc, target)
            refused = exc
        line = lines.line_for(*target.account)
        if line is None:
            return _without_line(open_, target, deadline, wait), None
    return _in_line(line, open_, target, started, deadline, refused)


def _once(open_: Callable[[], T], target: Target) -> T:
    try:
        return open_()
    except Exception as exc:
        classified = _refusal(exc, target)
        target.count(LOOK_REFUSED)
        target.logger.debug(
            "connect to %s for a look refused, not retried: %s", target.name, classified.short
        )
        raise


def _refusal(exc: BaseException, target: Target) -> Classified:
    """``exc`` classified, its cap learned; raised again unless it is a refusal at a cap."""
    classified = _counted(exc)
    if not classified.kind.is_cap:
        raise exc
    waits.began()
    if target.account is not None:
        lines.note_cap(*target.account, lines.cap_in_message(classified.message))
    return classified


def _counted(exc: BaseException) -> Classified:
    classified = classify(exc)
    waits.count(waits.REFUSALS, waits.refusal_kind(classified))
    return classified


def _without_line(
    open_: Callable[[], T],
    target: Target,
    deadline: float,
    wait: Callable[[float], T | None] | None,
) -> T:
    def on_retry(classified: Classified, attempt: int, delay: float) -> None:
        target.count(RETRY)
        waits.began()
        target.logger.debug(
            "connect to %s refused, attempt %d: %s; retrying in %.0f ms",
            target.name,
            attempt,
            classified.short,
            delay * 1000,
        )

    def on_giveup(classified: Classified, attempts: int, elapsed: float) -> None:
        _said_give_up(target, classified, attempts, elapsed, outside=None)

    def handed(delay: float) -> T | None:
        assert wait is not None
        found = wait(delay)
        if found is not None:
            target.count(HANDOFF)
            waits.count(waits.HANDOFFS)
        return found

    def opened() -> T:
        try:
            return open_()
        except Exception as exc:
            _counted(exc)
            raise

    return connect_with_retry(
        opened,
        budget=max(0.0, deadline - time.monotonic()),
        on_retry=on_retry,
        on_giveup=on_giveup,
        wait=handed if wait is not None else None,
    )


def _in_line(
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
    try:
        return head.serve()
    finally:
        line.leave_head()


def _refused_or_raise(exc: BaseException, target: Target, ticket: Ticket | None) -> None:
    try:
        _refusal(exc, target)
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
            if self.ticket is None:
                if self.line.take(min(lines.PROBE_INTERVAL, self.deadline - now)):
                    self.ticket = Ticket(self.line)
            elif self.attempts:
                pause = min(self.tried_at + lines.PROBE_INTERVAL, self.deadline) - now
                if pause > 0:
                    time.sleep(pause)
            found = self.attempt()
            if found is not None:
                return found

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
        """One connect: the connection and its ticket, or None when refused at the cap."""
        try:
            connection = self.open_()
        except Exception as exc:
            _refused_or_raise(exc, self.target, self.ticket)
            self.note_refusal(exc)
            return None
        self.attempts += 1
        if self.ticket is None:  # the server let it in while the line said none was free
            self.line.adopt()
            self.ticket = Ticket(self.line)
            _recount(self.line, connection)  # the free tokens become the server's free slots
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
        _said_give_up(
            self.target, classify(self.refused), self.attempts, elapsed, outside=self.outside
        )
        raise self.refused


def _recount(line: lines.Line, connection: Any) -> None:
    """After the line was found wrong: ask the server (one query, on the new connection)
    how many connections the account has, and heal the line to match."""
    try:
        snapshot = vendors.account_snapshot(connection)
        line.heal(snapshot.account_limit, len(snapshot.connections))
    except Exception as exc:  # the connect stands; the next repair asks again
        logger.debug("could not count the account's connections: %s", exc)
    finally:
        if liveness.in_transaction(connection) is not False:
            with contextlib.suppress(Exception):
                connection.rollback()


def _said_give_up(
    target: Target, classified: Classified, attempts: int, elapsed: float, outside: bool | None
) -> None:
    target.count(GIVEUP)
    waits.count(waits.GIVEUPS)
    where = ""
    if outside:
        where = (
            "; the slots are held outside pa_dbhealth (not in its line): a console, a "
            f"scheduled task, another host or app; `{target.look_command}` names them"
        )
    elif outside is False:
        where = f"; pa_dbhealth's own processes held them: `{target.look_command}` names them"
    target.logger.warning(
        "gave up connecting to %s after %d attempts in %.2f s: %s%s",
        target.name,
        attempts,
        elapsed,
        classified.short,
        where,
    )
