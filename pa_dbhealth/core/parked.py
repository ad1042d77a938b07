"""A parked connection (:mod:`pa_dbhealth.core.parking`) and the two ways it leaves the lot
for good: given up (closed, its token given back), or passed as it is to this process's
thread at the head of its line (:mod:`pa_dbhealth.core.passing`)."""

from __future__ import annotations

import logging
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pa_dbhealth.core.connect import Ticket
from pa_dbhealth.core.liveness import close_quietly
from pa_dbhealth.core.passing import HEADS, Passed
from pa_dbhealth.core.registry import HeldConnection

logger = logging.getLogger("pa_dbhealth.parking")


@dataclass(frozen=True)
class Parked:
    """A connection nobody uses now, with what it takes to use it again."""

    raw: Any  # the driver's connection
    ticket: Ticket  # its token of the account's line
    opened_with: Any  # what it was opened with: only an identical connect takes it
    idle_since: float  # time.monotonic() of its last use
    idle_limit: float | None  # seconds idle after which it is given up (None: never)
    # Its entry in the registry of holders while the lot keeps it, and the registry's
    # directory (None: not listed); made by the face once, at its first park.
    held: HeldConnection | None = None
    registry_dir: Path | None = None

    def idle_out(self, now: float) -> bool:
        """Whether it has been idle for its idle limit."""
        return self.idle_limit is not None and now - self.idle_since >= self.idle_limit


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


def give_up(parked: Parked, why: str) -> None:
    """Close a parked connection and give its token back (to the head of the line): the
    close first, as the backend does, so the server has let it go when the head connects
    (a head refused with a token would retire it). ``why`` is said at DEBUG."""
    try:
        close_quietly(parked.raw)  # closed all the same: the server may have gone
    finally:
        parked.ticket.give_back()
    logger.debug("gave up a parked connection: %s", why)
