"""What every face answers a visitor when the database cannot be had, and what it logs:
one place for the Django middleware's and the Flask face's 503.

A visitor gets words they can use and a ``Retry-After``, never the driver's message (it
names the account, and on PostgreSQL the host and port: those go to the log). The log
line says what happened and who holds the account's connections, from the registry of
holders (no connection needed: the cap is full).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from pa_dbhealth.core.errors import Classified, Kind
from pa_dbhealth.core.registry import Holder
from pa_dbhealth.core.render_holders import describe

RETRY_AFTER = 5  # seconds: a connection usually frees up within a request or two
QUOTA_RETRY_AFTER = 3600  # an hourly quota resets within the hour, not in seconds
SNAPSHOT_EVERY = 60.0  # seconds: at most one report of the holders per minute per process
CAP_BODY = (
    "Service unavailable: the site's database connections are all in use. "
    "Try again in a few seconds.\n"
)
QUOTA_BODY = (
    "Service unavailable: the site's database has used up its hourly quota. "
    "Waiting a few seconds will not help: it resets within the hour.\n"
)
GONE_BODY = (
    "Service unavailable: the site's database is not answering. Try again in a few seconds.\n"
)


@dataclass(frozen=True)
class Unavailable:
    """The 503 for one refused connect: the plain-text body, ``Retry-After`` in seconds,
    and whether it is an hourly quota (a project's ``503.html`` gets both)."""

    body: str
    retry_after: int
    quota: bool = False


def answer(found: Classified, *, gone: bool = False) -> Unavailable | None:
    """The 503 for a connect refused by the cap or an hourly quota; with ``gone``, also for
    a server that does not answer (unreachable, or the connection lost while connecting).
    None: not the database's availability (a bad query, a wrong password): not a 503."""
    if found.kind is Kind.HOURLY_QUOTA:
        return Unavailable(QUOTA_BODY, QUOTA_RETRY_AFTER, quota=True)
    if found.kind.is_cap:
        return Unavailable(CAP_BODY, RETRY_AFTER)
    if gone and found.kind in (Kind.UNREACHABLE, Kind.LOST):
        return Unavailable(GONE_BODY, RETRY_AFTER)
    return None


def head(found: Classified, name: str) -> str:
    """The first words of the log entry: which database, what happened, what was answered."""
    if found.kind is Kind.HOURLY_QUOTA:
        return (
            f"Database {name!r}: the hourly quota {found.resource} is used up ({found.short}); "
            f"answered 503. Waiting seconds will not help: it resets within the hour."
        )
    if found.kind.is_cap:
        return (
            f"Database {name!r}: connection refused, the cap is full ({found.short}); "
            f"answered 503 with Retry-After: {RETRY_AFTER}."
        )
    return (
        f"Database {name!r}: the server is not answering ({found.short}); "
        f"answered 503 with Retry-After: {RETRY_AFTER}."
    )


def holders_line(holders: Iterable[Holder]) -> str:
    """Who holds the account's connections, in one line, as the registry says."""
    named = [
        f"id {h.connection.id}: {describe(h.as_dict())}"
        for h in sorted(holders, key=lambda h: h.connection.opened_at)
    ]
    if not named:
        return "The registry of holders names no process with pa_dbhealth holding one."
    return f"Held by (the registry of holders says): {'; '.join(named)}."


class Throttle:
    """True at most once per ``every`` seconds, process-wide."""

    def __init__(self, every: float) -> None:
        self.every = every
        self._last: float | None = None
        self._lock = threading.Lock()

    def ready(self) -> bool:
        now = time.monotonic()
        with self._lock:
            if self._last is not None and now - self._last < self.every:
                return False
            self._last = now
            return True

    def reset(self) -> None:
        with self._lock:
            self._last = None
