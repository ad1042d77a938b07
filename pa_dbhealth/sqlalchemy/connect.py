"""The connect ``install()`` gives an engine: retried while the connection cap is full,
and handed a connection by a sibling thread that is done with one.

A ``do_connect`` listener (SQLAlchemy's hook for how a pool connects) makes the connect with
``core.retry``'s policy: 1226 for the account's cap, 1203 and 1040 are retried with
jittered backoff until ``CONNECT_RETRY`` seconds have passed; an hourly quota, a wrong
password, an unknown database or an unreachable server are raised at once, and nothing but
the connect is ever retried. Between attempts the thread waits in the engine's waiting room
(``core.handoff``): a connection another thread of this process checks in meanwhile, alive,
without an error since it was opened and with no transaction open, is handed to it instead
of being closed (``HANDOFF``). It is taken as it is, session state included, as a pooled
connection is.

With ``LINE`` (MySQL, once the account's cap is known) a connect first takes a token of the
account's line, shared with every process of the host (Django's included,
:mod:`pa_dbhealth.core.line`); the token goes back when the pool closes the connection, or
when the connection object is garbage-collected. A connection that holds a token is never
handed over: its token goes to whoever has waited longest, in any process.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from pa_dbhealth.core import connect as policy
from pa_dbhealth.core import handoff, staleness
from pa_dbhealth.core.look import in_look
from pa_dbhealth.core.options import Options
from pa_dbhealth.sqlalchemy import holding, tracker

logger = logging.getLogger("pa_dbhealth.sqlalchemy")

PARAMS = "pa_dbhealth_params"  # entry.info: the connect arguments the connection was made with
HANDOFFS = "pa_dbhealth_handoffs"  # entry.info: times its connection was handed over in a row
HANDED = "pa_dbhealth_handed"  # entry.info: its connection was handed over, not opened
ERRORED = "pa_dbhealth_errored"  # entry.info: an error occurred on it since it was opened
TICKET = "pa_dbhealth_ticket"  # entry.info: the token of the account's line it holds
OPENED_BY = "pa_dbhealth_opened_by"  # entry.info: the process it was opened in (a fork inherits)

Account = tuple[str, str]  # (server, account), as core.line and the registry key them


def retrying_connect(
    key: str,
    options: Options,
    room: handoff.WaitingRoom,
    on_refused: Callable[[], object],
    account: Account | None = None,
) -> Callable[..., Any]:
    """The ``do_connect`` listener for one engine (``key`` names it in logs; ``account``
    names its line, None for an engine that waits without one): ``core.connect``'s policy,
    as the Django backend's ``get_new_connection`` calls it."""
    target = _target(key, options, on_refused, account)

    def do_connect(dialect: Any, entry: Any, cargs: list[Any], cparams: dict[str, Any]) -> Any:
        if in_look():
            return None  # a look connects once, bounded, by itself
        params = (list(cargs), dict(cparams))
        handed_over: list[handoff.Handed] = []
        wait = _receive(key, room, params, handed_over) if options.HANDOFF else None
        raw, ticket = policy.connect(lambda: dialect.connect(*cargs, **cparams), target, wait=wait)
        if entry is not None:
            _note(entry, params, ticket, handed_over)
        return raw

    return do_connect


def _target(
    key: str, options: Options, on_refused: Callable[[], object], account: Account | None
) -> policy.Target:
    """What ``core.connect`` needs to know of the engine: its name, line, budget, counters."""

    def count(event: str) -> None:
        tracker.counts.event(event)
        if event == policy.RETRY:
            on_refused()

    return policy.Target(
        key,
        account if options.LINE else None,
        options.CONNECT_RETRY,
        count,
        "flask dbconnections",
        logger,
        options.REGISTRY_DIR,
    )


def _receive(
    key: str, room: handoff.WaitingRoom, params: Any, handed_over: list[handoff.Handed]
) -> Callable[[float], Any]:
    """Waiting between attempts: a connection a sibling thread hands over meanwhile, when
    it was made with the same arguments and is still alive (noted in ``handed_over``)."""

    def wait(delay: float) -> Any:
        # Not fit: no pool closes it, so it leaves the registry here.
        handed = room.receive(delay, params, discarded=holding.closed)
        if handed is None:
            return None
        logger.debug("connect to %s: took over a connection another thread was done with", key)
        handed_over.append(handed)
        return handed.raw

    return wait


def _note(
    entry: Any, params: Any, ticket: policy.Ticket | None, handed_over: list[handoff.Handed]
) -> None:
    """What the pool entry remembers of its connection's opening."""
    if ticket is not None:
        entry.info[TICKET] = ticket
    entry.info[PARAMS] = params
    entry.info[OPENED_BY] = os.getpid()
    entry.info[HANDOFFS] = handed_over[-1].handoffs if handed_over else 0
    if handed_over:
        entry.info[HANDED] = True


def may_hand_over(dbapi_connection: Any, entry: Any, options: Options) -> bool:
    """A connection as clean as a new one would be (``core.staleness.as_good_as_new``), no
    error since it was opened, not handed over too often in a row, opened in this process
    (a pool inherited across a fork holds the parent's sockets)."""
    info = entry.info
    return (
        options.HANDOFF
        and PARAMS in info
        and info.get(OPENED_BY) == os.getpid()
        and TICKET not in info
        and info.get(HANDOFFS, 0) < handoff.MAX_HANDOFFS
        and not info.get(ERRORED, False)
        and staleness.as_good_as_new(dbapi_connection)
    )


def hand_over(
    dbapi_connection: Any, entry: Any, options: Options, room: handoff.WaitingRoom
) -> bool:
    """Give a connection being checked in to a thread of this process waiting for the cap;
    then the pool entry lets go of it (the pool neither closes nor keeps it)."""
    if room.waiting == 0 or not may_hand_over(dbapi_connection, entry, options):
        return False
    handed = handoff.Handed(dbapi_connection, entry.info[PARAMS], entry.info.get(HANDOFFS, 0) + 1)
    if not room.offer(handed):
        return False
    entry.dbapi_connection = None  # the entry no longer holds it: not closed, not pooled
    entry.info.clear()
    return True


def give_back_token(entry: Any) -> None:
    """The pool is closing ``entry``'s connection: its token goes to the next in line."""
    ticket = entry.info.pop(TICKET, None) if entry is not None else None
    if ticket is not None:
        ticket.give_back()
