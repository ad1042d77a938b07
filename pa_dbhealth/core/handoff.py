"""Hand a connection to a sibling thread that is waiting for the cap, instead of closing it.

When the account's cap is full, a thread of this process whose connect was refused waits
before its next attempt (:mod:`pa_dbhealth.core.retry`). If, meanwhile, another thread of the
same process is done with its connection, closing that connection would free a slot that
any process may take a few milliseconds later; handing it to the waiting thread skips the
close, the connect, and the idle gap between them.

The receiver uses the connection as Django uses a persistent one (``CONN_MAX_AGE`` > 0):
as it is, session state included. It is not reset: COM_CHANGE_USER and
COM_RESET_CONNECTION log the session out of the account's connection count and back in,
and in that instant MariaDB 10.11 lets another client's connect past the cap (measured:
up to 6 connections on an account capped at 3), which is what this package exists to stop.

A connection is handed over only while a thread is already waiting for it, so nothing is
ever parked unused; and at most :data:`MAX_HANDOFFS` times in a row, after which it is
closed so threads of other processes get their turn at the slot.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pa_dbhealth.core import liveness

logger = logging.getLogger("pa_dbhealth.handoff")

MAX_HANDOFFS = 3  # times one connection is handed over before it is really closed


@dataclass(frozen=True)
class Handed:
    """A connection on its way from a thread that is done with it to one that waits."""

    raw: Any  # the driver's connection
    opened_with: Any  # its connect parameters: a waiter that would open the same takes it
    handoffs: int  # how many times it has been handed over, this time included


class WaitingRoom:
    """The threads of this process waiting to connect to one alias, and what is handed in."""

    def __init__(self) -> None:
        self._ready = threading.Condition(threading.Lock())
        self._waiting = 0
        self._handed: deque[Handed] = deque()

    def offer(self, handed: Handed) -> bool:
        """Give ``handed`` to a waiting thread; False when no thread waits for one."""
        with self._ready:
            # Every waiter takes what is in the room when it leaves, so nothing is left
            # behind as long as there are never more connections than waiters.
            if self._waiting <= len(self._handed):
                return False
            self._handed.append(handed)
            self._ready.notify()
            return True

    def wait(self, timeout: float) -> Handed | None:
        """Wait up to ``timeout`` seconds; what was handed over meanwhile, or None."""
        with self._ready:
            if not self._handed:
                self._waiting += 1
                try:
                    self._ready.wait_for(lambda: self._handed, timeout)
                finally:
                    self._waiting -= 1
            return self._handed.popleft() if self._handed else None

    def receive(
        self, timeout: float, opened_with: Any, discarded: Callable[[Any], object] | None = None
    ) -> Handed | None:
        """:meth:`wait`, and take what was handed over only when it is fit to use in place
        of a connection opened with ``opened_with`` (:func:`fit_to_receive`; else it is
        closed, and ``discarded(raw)`` called)."""
        handed = self.wait(timeout)
        if handed is None or fit_to_receive(handed.raw, handed.opened_with, opened_with, discarded):
            return handed
        return None

    @property
    def waiting(self) -> int:
        with self._ready:
            return self._waiting


def fit_to_receive(
    raw: Any, opened_with: Any, wanted: Any, discarded: Callable[[Any], object] | None = None
) -> bool:
    """The one rule on receipt of a connection another thread or request was done with
    (handed over, passed from the lot, taken back from it): opened as the receiver would
    open one, and still alive on the server (its socket is quiet; it may have died in
    between). A connection that is not fit is closed here."""
    if opened_with == wanted and liveness.is_dead(raw) is False:
        return True
    logger.debug("a connection handed over was not fit to use (other settings, or dead)")
    liveness.close_quietly(raw)  # not the receiver's to use
    if discarded is not None:
        discarded(raw)
    return False


_rooms: dict[str, WaitingRoom] = {}
_rooms_lock = threading.Lock()


def room(alias: str) -> WaitingRoom:
    """The waiting room of ``alias`` in this process."""
    found = _rooms.get(alias)
    if found is None:
        with _rooms_lock:
            found = _rooms.setdefault(alias, WaitingRoom())
    return found
