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

import time
from collections.abc import Callable
from typing import TypeVar

from pa_dbhealth.core import line as lines
from pa_dbhealth.core import waits, waits_host
from pa_dbhealth.core.errors import Classified
from pa_dbhealth.core.in_line import Ticket, connect_in_line
from pa_dbhealth.core.refusals import (
    GIVEUP,
    HANDOFF,
    LOOK_REFUSED,
    RETRY,
    Target,
    counted,
    refusal,
    said_give_up,
)
from pa_dbhealth.core.retry import connect_with_retry, in_single_attempt

__all__ = ["GIVEUP", "HANDOFF", "LOOK_REFUSED", "RETRY", "Target", "Ticket", "connect"]

T = TypeVar("T")


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
            refusal(exc, target)
            refused = exc
        line = lines.line_for(*target.account)
        if line is None:
            return _without_line(open_, target, deadline, wait), None
    return connect_in_line(line, open_, target, started, deadline, refused)


def _once(open_: Callable[[], T], target: Target) -> T:
    try:
        return open_()
    except Exception as exc:
        classified = refusal(exc, target)
        target.count(LOOK_REFUSED)
        target.logger.debug(
            "connect to %s for a look refused, not retried: %s", target.name, classified.short
        )
        raise


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
        said_give_up(target, classified, attempts, elapsed, outside=None)

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
            counted(exc)
            raise

    return connect_with_retry(
        opened,
        budget=max(0.0, deadline - time.monotonic()),
        on_retry=on_retry,
        on_giveup=on_giveup,
        wait=handed if wait is not None else None,
    )
