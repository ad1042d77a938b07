"""A timer that notices, outside requests, a checkout held past its engine's leak threshold
while nothing else happens in the process (a script or a command waiting, a thread holding
a session): it sweeps the installed engines' checkouts (the tracker logs the probable leak)
and calls back so the registry of holders shows it. One pending timer per process, armed
for the earliest checkout due; never armed by a request."""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable

from pa_dbhealth.sqlalchemy import tracker

_lock = threading.Lock()
_timer: threading.Timer | None = None
_due = float("inf")
_engines: weakref.WeakSet[tracker.Checkouts] = weakref.WeakSet()


def watch(checkouts: tracker.Checkouts, then: Callable[[], object]) -> None:
    """Arm the timer for ``checkouts``' next probable leak, unless it fires sooner already;
    ``then`` runs after each sweep."""
    global _timer, _due
    _engines.add(checkouts)
    due = checkouts.due()
    if due is None or due >= _due:
        return
    with _lock:
        if _timer is not None:
            _timer.cancel()
        _due = due
        _timer = threading.Timer(max(0.0, due - time.monotonic()) + 0.05, _tick, (then,))
        _timer.daemon = True
        _timer.name = "pa_dbhealth-leaks"
        _timer.start()


def _tick(then: Callable[[], object]) -> None:
    global _timer, _due
    with _lock:
        _timer, _due = None, float("inf")
    for checkouts in list(_engines):
        checkouts.sweep()
    then()
    for checkouts in list(_engines):
        watch(checkouts, then)


def _after_fork() -> None:
    global _lock, _timer, _due
    _lock, _timer, _due = threading.Lock(), None, float("inf")  # the parent's timer stays there


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
