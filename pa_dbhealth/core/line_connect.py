"""Connecting in the account's line (:mod:`pa_dbhealth.core.line`), for every face.

A connect takes a token of the account's line first, waiting behind the threads of every
process of the host that came before it, then connects (still retrying briefly when the
server refuses: a slot the line cannot see may be taken). The token goes back when the
connection is really closed, or when the driver's connection object is garbage-collected
(a thread that ended without closing), so a token is never lost for good.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from pa_dbhealth.core import line as lines
from pa_dbhealth.core.retry import OnGiveUp, OnRetry, connect_with_retry

T = TypeVar("T")

# A token holder that is refused anyway retries this soon: the slot is about to free up.
FIRST_DELAY = 0.0005
MAX_DELAY = 0.005


class Ticket:
    """A token taken from a line, given back exactly once: by :meth:`give_back`, or when
    the connection object it was bound to is garbage-collected."""

    def __init__(self, line: lines.Line) -> None:
        self.line = line
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._done = False

    def bind(self, connection: Any) -> None:
        try:
            self._finalizer = weakref.finalize(connection, self.give_back)
        except TypeError:  # a connection type without weak references
            self._finalizer = None

    def give_back(self) -> None:
        if self._done:
            return
        self._done = True
        if self._finalizer is not None:
            self._finalizer.detach()
        self.line.give_back()


def connect_in_line(
    line: lines.Line,
    connect: Callable[[], T],
    budget: float,
    on_retry: OnRetry,
    on_giveup: OnGiveUp,
) -> tuple[T, Ticket | None]:
    """Connect once a token of ``line`` is ours; ``(connection, ticket)``. When the line
    does not move within ``budget`` seconds, the server decides with one last attempt."""
    started = time.monotonic()
    if not (line.take_now() or line.take(budget)):
        return connect_with_retry(connect, budget=0, on_giveup=on_giveup), None
    ticket = Ticket(line)
    try:
        connection = connect_with_retry(
            connect,
            budget=max(0.0, budget - (time.monotonic() - started)),
            on_retry=on_retry,
            on_giveup=on_giveup,
            first_delay=FIRST_DELAY,
            max_delay=MAX_DELAY,
        )
    except BaseException:
        ticket.give_back()
        raise
    ticket.bind(connection)
    return connection, ticket
