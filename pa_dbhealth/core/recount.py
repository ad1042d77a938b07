"""The line healed from the server's word: the account's connections counted on one of them
(:mod:`pa_dbhealth.core.line`). A connect the server let in while the line said none was
free asks it (:mod:`pa_dbhealth.core.in_line`), and so does a parked connection from time to
time (:mod:`pa_dbhealth.core.parking`): a console or a scheduled task connects without the
line, and only the server knows."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from pa_dbhealth.core import line as lines
from pa_dbhealth.core import liveness, vendors

logger = logging.getLogger("pa_dbhealth.connect")

# Connections the server still lists but that hold no slot any more (or not yet): a close it
# has not finished, a kill, a login it is refusing.
GOING = frozenset({"Quit", "Killed", "Connect"})


def count_account(connection: Any) -> tuple[int, int] | None:
    """The account's connections and its cap (0: none), asked on ``connection`` (one
    query); None when the server could not be asked. Leaves no transaction open."""
    try:
        snapshot = vendors.account_snapshot(connection)
    except Exception as exc:
        logger.debug("could not count the account's connections: %s", exc)
        return None
    finally:
        if liveness.in_transaction(connection) is not False:
            with contextlib.suppress(Exception):
                connection.rollback()
    holding = sum(1 for c in snapshot.connections if c.command not in GOING)
    return holding, snapshot.account_limit or 0


def recount(line: lines.Line, connection: Any) -> None:
    """After the line was found wrong: count the account on ``connection`` (which holds a
    token) and heal the line to match; when it cannot be asked, the next repair asks."""
    counted = count_account(connection)
    if counted is not None:
        holding, cap = counted
        line.heal(cap or None, holding)


def full_with_outsiders(line: lines.Line, connection: Any) -> bool | None:
    """Whether the account is full with part of it held outside the line (more
    connections on the server than tokens taken), counted on ``connection``; None when
    the server could not be asked on it."""
    held_in_line = line.cap - line.free
    counted = count_account(connection)
    if counted is None:
        return None
    holding, cap = counted
    return bool(cap) and holding >= cap and holding > held_in_line
