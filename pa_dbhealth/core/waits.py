"""What this process saw of waiting for connections: how long each wait lasted, who waits
now, the refusals, give-ups, handoffs, stale closes and repairs of the line.

The connect policy (:mod:`pa_dbhealth.core.connect`) times each connect with
:func:`timing`; a wait starts at its first refusal or its first wait in line
(:func:`began`) and ends at the connection or the give-up. Other modules count their
events with :func:`count`. Each event is a lock and a few integer adds; a connect that never
waits costs a thread-local set and reset, nothing else. The figures are published to a small
file per process (:mod:`pa_dbhealth.core.waits_files`), which a scrape sums host-wide.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from pa_dbhealth.core.errors import Classified, Kind

# Upper bounds (seconds) of the wait histogram's buckets; a budget (CONNECT_RETRY) larger
# than the last one adds its own.
BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

# Counter families and their label values.
REFUSALS, GIVEUPS, HANDOFFS, STALE, REPAIRS = "refusals", "giveups", "handoffs", "stale", "repairs"
CAP, QUOTA, OTHER = "cap", "quota", "other"
ADOPT, TRIM, SET_CAP, HEAL, RETIRE = "adopt", "trim", "cap", "heal", "retire"


def refusal_kind(classified: Classified) -> str:
    if classified.kind.is_cap:
        return CAP
    return QUOTA if classified.kind is Kind.HOURLY_QUOTA else OTHER


class _Wait:
    """One connect that has had to wait: when it began (``time.time()``, as the file says
    it), and whether the account's line counts it among its waiters."""

    def __init__(self, budget: float) -> None:
        self.budget = budget
        self.started: float | None = None  # time.monotonic()
        self.since: float | None = None  # time.time()
        self.lined = False


_lock = threading.Lock()
_local = threading.local()
_counters: dict[str, dict[str, int]] = {}
_buckets: dict[float, int] = {}  # upper bound -> observations in (previous bound, bound]
_total = [0, 0.0]  # observations, seconds
_current: dict[int, _Wait] = {}  # id() of each wait going on now
_listeners: list[Callable[[], None]] = []  # waits_host's: publish soon


def listen(listener: Callable[[], None]) -> None:
    """Call ``listener`` after every change (outside the lock)."""
    _listeners.append(listener)


def _changed() -> None:
    for listener in _listeners:
        listener()


def count(family: str, label: str = "") -> None:
    """One more event of ``family`` (with its label: a kind, a reason)."""
    with _lock:
        found = _counters.setdefault(family, {})
        found[label] = found.get(label, 0) + 1
    _changed()


@contextmanager
def timing(budget: float) -> Iterator[None]:
    """Around one connect: a wait it begins is observed when it ends, however it ends."""
    wait = _Wait(budget)
    _local.wait = wait
    try:
        yield
    finally:
        _local.wait = None
        if wait.started is not None:
            _observe(wait, time.monotonic() - wait.started)


def began(*, lined: bool = False) -> None:
    """The connect of this thread waits from now (its first refusal or wait in line);
    ``lined``: it stands in the account's line, whose waiters the line counts itself."""
    wait: _Wait | None = getattr(_local, "wait", None)
    if wait is None:
        return  # a look (single attempt), or outside a connect
    wait.lined = wait.lined or lined
    if wait.started is not None:
        return
    wait.started, wait.since = time.monotonic(), time.time()
    with _lock:
        _current[id(wait)] = wait
    _changed()


def _observe(wait: _Wait, seconds: float) -> None:
    bounds = sorted({*BUCKETS, wait.budget}) if wait.budget > BUCKETS[-1] else BUCKETS
    bound = next((b for b in bounds if seconds <= b), float("inf"))
    with _lock:
        _current.pop(id(wait), None)
        _buckets[bound] = _buckets.get(bound, 0) + 1
        _total[0] += 1
        _total[1] += seconds
    _changed()


def figures() -> dict[str, Any]:
    """This process's figures, as its file holds them (JSON-ready)."""
    with _lock:
        current = list(_current.values())
        return {
            "counters": {family: dict(found) for family, found in _counters.items()},
            "buckets": [
                [bound, n] for bound, n in sorted(_buckets.items()) if bound != float("inf")
            ],
            "beyond": _buckets.get(float("inf"), 0),
            "count": _total[0],
            "sum": _total[1],
            "waiting_outside_line": sum(1 for wait in current if not wait.lined),
            "oldest_wait_since": min((w.since for w in current if w.since), default=None),
        }


def reset() -> None:
    """Forget every figure (a forked child starts afresh; tests)."""
    with _lock:
        _counters.clear()
        _buckets.clear()
        _total[:] = [0, 0.0]
        _current.clear()
