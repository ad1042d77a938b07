"""The connections PARK keeps (:mod:`pa_dbhealth.core.parking`), in the registry of holders:
so ``dbconnections`` names the process that keeps them, and says why, instead of "not
tracked". Each is listed from its first park until its token is given back (closed),
parked or in use by one of the process's requests meanwhile: one entry that does not
change with each request, so the file is written only when one is kept or let go.

The releaser thread writes the list, at most every :data:`LIST_EVERY` seconds: a request
pays nothing for it.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path
from typing import NamedTuple

from pa_dbhealth.core import registry
from pa_dbhealth.core.connect import Ticket
from pa_dbhealth.core.parked import Parked

LIST_EVERY = 0.25  # seconds at least between two writes of this process's list
SOURCE = "parked"  # this list's name in the process's registry file


class _Kept(NamedTuple):
    """A kept connection as last parked, without the connection itself: a connection its
    owner drops must still be garbage-collected (its token then goes back)."""

    ticket: Ticket
    held: registry.HeldConnection
    registry_dir: Path | None
    idle_since: float


class KeptList:
    """This process's kept connections, by their token, as last parked."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: dict[int, _Kept] = {}
        self._where: Path | None = None  # the registry written to last
        self._due = 0.0  # time.monotonic() of the next write
        self._changed = False

    def note(self, parked: Parked) -> None:
        """``parked`` was parked (again): listed until its token is given back."""
        if parked.held is None:
            return
        kept = _Kept(parked.ticket, parked.held, parked.registry_dir, parked.idle_since)
        with self._lock:
            self._changed = self._changed or id(parked.ticket) not in self._kept
            self._kept[id(parked.ticket)] = kept

    def publish(self, now: float, *, final: bool = False) -> None:
        """Write the list when it changed (a connection kept or let go) and LIST_EVERY has
        passed since the last write, or, ``final``, at once (the releaser ends)."""
        if now < self._due and not final:
            return
        with self._lock:  # written under it: two releasers never write in the wrong order
            for key in [key for key, one in self._kept.items() if one.ticket.done]:
                del self._kept[key]
                self._changed = True
            if not self._changed:
                return
            self._changed = False
            self._due = now + LIST_EVERY
            kept = list(self._kept.values())
            where = kept[0].registry_dir if kept else self._where
            if where is None:
                return
            self._where = where
            wall = time.time() - now
            entries = [
                dataclasses.replace(one.held, last_used=wall + one.idle_since) for one in kept
            ]
            registry.publisher.publish(where, entries, source=SOURCE)

    def forget_inherited(self) -> None:
        """In a forked child: the parent's connections are not this process's to list."""
        self._lock = threading.Lock()
        self._kept, self._where, self._due, self._changed = {}, None, 0.0, False
