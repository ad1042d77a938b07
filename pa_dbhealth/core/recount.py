"""The line healed from the server's word: the account's connections counted on one of them
(:mod:`pa_dbhealth.core.line`). A connect the server let in while the line said none was
free asks it (:mod:`pa_dbhealth.core.in_line`), and so does a parked connection from time to
time (:mod:`pa_dbhealth.core.parking`): a console or a scheduled task connects without the
line, and only the server knows."""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from pa_dbhealth.core import line as lines
from pa_dbhealth.core import liveness, vendors

logger = logging.getLogger("pa_dbhealth.connect")

# Connections the server still lists but that hold no slot any more (or not yet): a close it
# has not finished, a kill, a login it is refusing.
GOING = frozenset({"Quit", "Killed", "Connect"})
# Counts in a row (about 0.3 s) that find no token free while nobody waits: a slot is given
# back even to a busy site, so a console or a task outside the line is refused no longer.
FULL_COUNTS = 10
# Seconds between two counts that ask the server for the account's cap as it is now: the
# cap a parked connection logged in with may have changed since.
CAP_EVERY = 1.0


def count_account(connection: Any, *, fresh_cap: bool = False) -> tuple[int, int] | None:
    """The account's connections and its cap (0: none), asked on ``connection`` (one
    query; two for the cap of now, ``fresh_cap``); None when the server could not be
    asked. Leaves no transaction open."""
    try:
        snapshot = vendors.account_snapshot(connection, fresh_cap=fresh_cap)
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
    ``kill -9`` that the server had not let go yet). And when no token is free and no
    connection was taken since the last count, the site idles with every slot parked:
    one is given up, so a console that connects now finds it; a busy site gives one up
    after FULL_COUNTS counts with no token free, so a console waits no longer than that.
    Every CAP_EVERY seconds the cap is read as it is now, and a changed one is the line's
    at once (a lowered cap left the site's parked connections holding the whole account).
    A count is *settled* when it found what the one before found and has nothing to
    confirm: the releaser then counts less often (:mod:`pa_dbhealth.core.releaser`)."""

    def __init__(self) -> None:
        self._outside: dict[int, bool] = {}  # line key -> the last count said: held outside
        self._short: dict[int, int] = {}  # line key -> tokens missing at the last count
        self._full: dict[int, int] = {}  # line key -> counts in a row with no token free
        self._cap_read_at: dict[int, float] = {}  # line key -> when the cap was last read
        # line key -> (connections, cap, tokens free) at the last count
        self._found: dict[int, tuple[int, int, int]] = {}
        self._settled: dict[int, bool] = {}  # line key -> the last count was settled

    def settled(self, line: lines.Line) -> bool:
        """Whether the last count of ``line``'s account found what the one before it found,
        with nothing to confirm or to heal (no slot held outside, none missing, no streak
        of counts without a free slot)."""
        return self._settled.get(line.key, False)

    def why_give_up(self, line: lines.Line, connection: Any) -> str | None:
        """Count the account on ``connection`` (parked, holding its token) and heal
        ``line`` from it; why to give the connection up, or None to keep it parked."""
        free, nobody_waits = line.free, not line.someone_waits
        idle = not line.taken_since_last_look()
        self._settled[line.key] = False
        now = time.monotonic()
        fresh_cap = now - self._cap_read_at.get(line.key, -CAP_EVERY) >= CAP_EVERY
        if fresh_cap:
            self._cap_read_at[line.key] = now
        counted = count_account(connection, fresh_cap=fresh_cap)
        if counted is None:
            self._outside.pop(line.key, None)
            self._found.pop(line.key, None)
            return "the server could not be asked"
        holding, cap = counted
        same = self._found.get(line.key) == (holding, cap, free)
        self._found[line.key] = (holding, cap, free)
        short = max(cap - holding - free, 0) if cap and nobody_waits else 0
        changed = fresh_cap and cap and cap != line.cap
        healed = bool(changed or line.retired or (short and self._short.get(line.key) == short))
        if healed:
            line.heal(cap or None, holding)
            short = 0
        self._short[line.key] = short
        outside = bool(cap) and holding >= cap and holding > line.cap - free
        twice = outside and self._outside.get(line.key, False)
        self._outside[line.key] = outside and not twice
        if twice:
            return "the account is full, held outside the line"
        full = self._full.get(line.key, 0) + 1 if free == 0 and nobody_waits else 0
        self._full[line.key] = 0 if idle or full >= FULL_COUNTS else full
        if full and idle:
            return "the site idles with no slot free"
        if full >= FULL_COUNTS:
            return f"no slot free for {FULL_COUNTS} counts"
        self._settled[line.key] = same and not (short or outside or full or healed)
        return None
