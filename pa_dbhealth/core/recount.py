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


class AccountCounts:
    """What the host's one counting process (:mod:`pa_dbhealth.core.parking`) remembers
    between two counts of an account, by line: a count on a parked connection every
    CHECK_INTERVAL, while connections are parked, so no connect comes to heal the line.

    One count can be caught mid-change (a connect that holds its token but is not listed
    yet, a close the server has not read), so a count acts only when the one before it
    said the same: the account full with part of it held outside the line (the parked
    connection is given up, so a console finds a slot), or more slots free on the server
    than tokens in the line while nobody waits (tokens a transient count took away: the
    line heals). Tokens retired since the last count are healed at once, as a connect
    does after them (a refusal may have come from a worker's connection killed with
    ``kill -9`` that the server had not let go yet)."""

    def __init__(self) -> None:
        self._outside: dict[int, bool] = {}  # line key -> the last count said: held outside
        self._short: dict[int, int] = {}  # line key -> tokens missing at the last count

    def keep(self, line: lines.Line, connection: Any) -> bool:
        """Count the account on ``connection`` (parked, holding its token) and heal
        ``line`` from it; whether to keep the connection parked (False: full with
        outsiders twice in a row, or the server could not be asked on it)."""
        held_in_line, nobody_waits = line.cap - line.free, not line.someone_waits
        counted = count_account(connection)
        if counted is None:
            self._outside.pop(line.key, None)
            return False
        holding, cap = counted
        short = max(cap - holding - line.free, 0) if cap and nobody_waits else 0
        if line.retired or (short and self._short.get(line.key) == short):
            line.heal(cap or None, holding)
            short = 0
        self._short[line.key] = short
        outside = bool(cap) and holding >= cap and holding > held_in_line
        twice = outside and self._outside.get(line.key, False)
        self._outside[line.key] = outside and not twice
        return not twice
