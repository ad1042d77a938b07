"""The server's idle timeout, learned once per database per process, and the idle limit.

A connection idle for longer than the server's timeout minus ``TIMEOUT_MARGIN`` counts as
stale. Each face learns the timeout from the first connection it opens to a database (one
query, ``vendors.server_facts``), keyed by what it calls the database (a Django alias, an
SQLAlchemy engine's URL); until then, or when the server cannot say, the fallback
(``SERVER_IDLE_TIMEOUT``) is used.
"""

from __future__ import annotations

import threading
from typing import NamedTuple


class IdleLimit(NamedTuple):
    seconds: float  # a connection idle this long counts as stale
    clamped: bool  # TIMEOUT_MARGIN was not smaller than the timeout: half the timeout is used


def idle_limit(server_timeout: float, margin: float) -> IdleLimit:
    """Seconds of idleness after which a connection is stale: the timeout minus the margin,
    or half the timeout when the margin would leave nothing (a margin >= the timeout)."""
    if margin < server_timeout:
        return IdleLimit(float(server_timeout - margin), False)
    return IdleLimit(server_timeout / 2, True)


class Learned:
    """The idle timeouts this process's servers reported, by database key (None: that
    server drops no idle connection)."""

    def __init__(self) -> None:
        self._timeouts: dict[str, int | None] = {}
        self._lock = threading.Lock()

    def knows(self, key: str) -> bool:
        return key in self._timeouts

    def learn(self, key: str, timeout: int | None) -> None:
        with self._lock:
            self._timeouts[key] = timeout

    def forget(self) -> None:
        """Learn again from the next connections (the server's timeout may have changed, or
        a connection was lost sooner than expected)."""
        with self._lock:
            self._timeouts.clear()

    def server_timeout(self, key: str, fallback: float) -> float | None:
        """The timeout as learned for ``key``, else ``fallback``; None: no idle timeout."""
        if key in self._timeouts:
            timeout = self._timeouts[key]
            return None if timeout is None else float(timeout)
        return float(fallback)

    def idle_limit(self, key: str, fallback: float, margin: float) -> float | None:
        """Seconds after which a connection to ``key`` is stale; None when its server has no
        idle timeout."""
        timeout = self.server_timeout(key, fallback)
        return None if timeout is None else idle_limit(timeout, margin).seconds
