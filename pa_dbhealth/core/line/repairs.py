"""The line heals itself when the server disagrees (:mod:`pa_dbhealth.core.line`):

- a cap the server states (a 1226 message, the account's facts) replaces the line's
  (:meth:`Repairs.set_cap`);
- a connect that succeeds while no token is free mints one for its connection
  (:meth:`Repairs.adopt`): a token held by a connection that is gone, or a raised cap;
- a token whose holder the server refused leaves the line (:meth:`Repairs.retire`);
- more free tokens than the cap are trimmed (:meth:`Repairs.trim`);
- the account's connections counted by the server set the free tokens (:meth:`Repairs.heal`).

Each repair is counted (:mod:`pa_dbhealth.core.waits`) and said at WARNING.
"""

from __future__ import annotations

import logging

from pa_dbhealth.core import waits
from pa_dbhealth.core.line.semset import SemaphoreSet
from pa_dbhealth.core.line.sysv import (
    CAP,
    DEBT,
    GETVAL,
    IPC_NOWAIT,
    MAX_TOKENS,
    RETIRED,
    SEM_UNDO,
    TOKENS,
)

logger = logging.getLogger("pa_dbhealth.line")


class Repairs(SemaphoreSet):
    """What changes the line's count of tokens on the server's word."""

    def adopt(self) -> None:
        """Mint a token for a connection the server let in while none was free (a token held
        by a connection that is gone, a raised cap): the count heals, the extra is trimmed
        when it comes back."""
        self._op((TOKENS, 1, 0), (TOKENS, -1, SEM_UNDO))
        waits.count(waits.REPAIRS, waits.ADOPT)
        logger.warning(
            "the line of connections was wrong: the server let a connection in while no "
            "token was free; a token was added for it"
        )

    def retire(self) -> None:
        """Remove the token this process holds from the line, given back to nobody: the
        server refused its holder, so the line had more tokens than the server has slots
        (held outside the line: a console, another host). A later connect the server lets
        in while none is free mints one again (:meth:`adopt`, :meth:`heal`)."""
        self._op((DEBT, -1, IPC_NOWAIT))  # a lowered cap's debt, if any, is paid by it
        self._op((TOKENS, 1, SEM_UNDO), (TOKENS, -1, IPC_NOWAIT), (RETIRED, 1, IPC_NOWAIT))
        waits.count(waits.REPAIRS, waits.RETIRE)
        logger.warning(
            "the line of connections was wrong: the server refused a connect that held a "
            "token (slots held outside pa_dbhealth); the token was removed"
        )

    def trim(self) -> int:
        """Remove free tokens beyond the cap; how many were removed."""
        excess = self.free - self.cap
        if excess <= 0 or self.cap < 1:
            return 0
        if not self._op((TOKENS, -excess, IPC_NOWAIT)):
            return 0
        waits.count(waits.REPAIRS, waits.TRIM)
        logger.warning(
            "the line of connections was wrong: %d free tokens for a cap of %d; %d removed",
            excess + self.cap,
            self.cap,
            excess,
        )
        return excess

    def heal(self, cap: int | None, in_use: int) -> int:
        """The server's word, from a connection that holds its token: the account's cap and
        how many connections it has. The free tokens become the free slots, whoever holds
        the others (outsiders included); the change (+ added, - removed)."""
        if cap and self._store_cap(cap) is not None:
            self._op((DEBT, -self._get(GETVAL, DEBT), IPC_NOWAIT))
        retired = self._get(GETVAL, RETIRED)
        if retired:  # what was retired is counted again, from the server's word
            self._op((RETIRED, -retired, IPC_NOWAIT))
        change = max(self.cap - in_use, 0) - self.free
        if change == 0 or not self._op((TOKENS, change, IPC_NOWAIT)):
            return 0
        waits.count(waits.REPAIRS, waits.HEAL)
        logger.warning(
            "the line of connections was wrong: %d free tokens for %d free slots on the "
            "server; now %d",
            self.free - change,
            self.free,
            self.free,
        )
        return change

    def set_cap(self, cap: int) -> bool:
        """Make the line's cap the server's: tokens added or removed by the difference
        (those held now are trimmed when they come back). True when it changed."""
        old = self._store_cap(cap)
        if old is None:
            return False
        if cap > old:
            self._op((TOKENS, cap - old, IPC_NOWAIT))
        else:
            owed = old - cap
            removed = min(owed, self.free)
            if removed and not self._op((TOKENS, -removed, IPC_NOWAIT)):
                removed = 0
            if owed > removed:  # held now: removed as they come back
                self._op((DEBT, owed - removed, IPC_NOWAIT))
        waits.count(waits.REPAIRS, waits.SET_CAP)
        logger.warning("the account's cap changed on the server: %d, was %d", cap, old)
        return True

    def _store_cap(self, cap: int) -> int | None:
        """Write the server's cap (compare-and-set against a racing process); the old one,
        or None when nothing changed."""
        old = self.cap
        if cap == old or not 1 <= cap <= MAX_TOKENS or old < 1:
            return None
        if not self._op((CAP, -old, IPC_NOWAIT), (CAP, 0, IPC_NOWAIT), (CAP, cap, IPC_NOWAIT)):
            return None
        return old
