"""Every pooled connection this process checks out: who holds it, since when, from where.

Process-wide and thread-safe, fed by the pool events ``install()`` registers. A checkout
records its thread and the first frame of user code that asked for it (outside
SQLAlchemy, Flask-SQLAlchemy and pa_dbhealth). A connection checked out for longer than
the engine's leak threshold, checked out while a module was being imported, or given back
only by the garbage collector (a session nobody closed) is logged once as a probable leak,
with that frame. The figures are what the health view's ``process`` block shows.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from types import FrameType
from typing import Any

from pa_dbhealth.core import registry
from pa_dbhealth.core.counters import Counters
from pa_dbhealth.core.origins import Origins
from pa_dbhealth.core.registry import Leak

logger = logging.getLogger("pa_dbhealth.sqlalchemy")

_lock = threading.Lock()
counts = Counters()


@dataclass
class Checkout:
    """One connection checked out of a pool now."""

    engine: str  # the engine's key (URL without password)
    thread_name: str
    since: float  # time.monotonic()
    caller: str | None  # "file:line in function"
    at_import: bool
    proxy: weakref.ref[Any] | None  # the pool's proxy handed out: dead once garbage-collected
    via_session: bool = False  # an ORM Session asked for it
    reported: bool = False
    leak: Leak | None = None  # why it is a probable leak, once reported

    def held(self, now: float | None = None) -> float:
        return (time.monotonic() if now is None else now) - self.since

    def describe(self, now: float | None = None) -> str:
        where = f", checked out at {self.caller}" if self.caller else ""
        return (
            f"{self.engine} held by thread {self.thread_name!r} for {self.held(now):.1f} s{where}"
        )


@dataclass(eq=False)  # one per engine: compared and hashed by identity
class Checkouts:
    """The checkouts of one engine, by pool entry."""

    engine: str
    leak_after: float
    on_leak: Callable[[], object] = lambda: None  # after a probable leak is reported
    open: dict[int, Checkout] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def checked_out(self, entry: Any, proxy: Any) -> None:
        caller, at_import, via_session = where(sys._getframe(1))
        thread = threading.current_thread()
        ref = None
        with contextlib.suppress(TypeError):
            ref = weakref.ref(proxy)
        checkout = Checkout(
            self.engine, thread.name, time.monotonic(), caller, at_import, ref, via_session
        )
        with self.lock:
            self.open[id(entry)] = checkout

    def checked_in(self, entry: Any) -> None:
        with self.lock:
            checkout = self.open.pop(id(entry), None)
        if checkout is None or checkout.reported:
            return
        if checkout.proxy is not None and checkout.proxy() is None:
            # The pool's proxy is gone: the garbage collector gave the connection back.
            self._report(checkout, Leak(NEVER_RETURNED, NEVER_RETURNED_WHY, HELD_FIX))

    def sweep(self) -> list[Checkout]:
        """Report checkouts held past the threshold (once each); the checkouts open now."""
        now = time.monotonic()
        with self.lock:
            found = list(self.open.values())
        for checkout in found:
            if checkout.reported:
                continue
            if checkout.at_import and checkout.via_session:
                self._report(checkout, Leak(registry.MODULE_SESSION, SESSION_WHY, SESSION_FIX))
            elif checkout.at_import:  # still held after the import that checked it out
                self._report(checkout, Leak(registry.IMPORT, IMPORT_WHY, IMPORT_FIX))
            elif checkout.held(now) >= self.leak_after:
                why = f"it has been checked out for {self.leak_after:g} s or more"
                self._report(checkout, Leak(HELD_TOO_LONG, why, HELD_FIX))
        return found

    def due(self) -> float | None:
        """``time.monotonic()`` at which a checkout open now becomes a probable leak."""
        with self.lock:
            waiting = [c.since for c in self.open.values() if not c.reported]
        return min(waiting) + self.leak_after if waiting else None

    def _report(self, checkout: Checkout, leak: Leak) -> None:
        with _lock:
            if checkout.reported:
                return
            checkout.reported = True
            checkout.leak = leak
        counts.count("leaks")
        logger.warning(
            "Probable connection leak: %s; %s. Fix: %s.", checkout.describe(), leak.why, leak.fix
        )
        self.on_leak()


# Kinds of probable leak this face adds to the registry's (registry.IMPORT, MODULE_SESSION).
HELD_TOO_LONG = "held_too_long"
NEVER_RETURNED = "never_returned"
IMPORT_WHY = "it was checked out while a module was being imported, so nothing returns it"
IMPORT_FIX = (
    "check connections out inside the function that needs them (`with engine.connect() as "
    "conn:` there), not at a module's top level"
)
SESSION_WHY = "a session created at a module's top level checked it out, and nothing closes it"
SESSION_FIX = (
    "create sessions per request or task: `with Session() as session:` inside the function "
    "that needs one, not at module level"
)
NEVER_RETURNED_WHY = "it was never returned: its session or connection was not closed"
HELD_FIX = (
    "close sessions with `with Session() as session:` (or session.close() in a finally "
    "block), and create them per request, not at module level"
)


@cache
def _session_file() -> str | None:
    spec = importlib.util.find_spec("sqlalchemy.orm.session")
    return os.path.abspath(spec.origin) if spec is not None and spec.origin else None


ORIGINS = Origins("sqlalchemy", "flask_sqlalchemy")


def where(frame: FrameType | None) -> tuple[str | None, bool, bool]:
    """The first frame outside SQLAlchemy, Flask-SQLAlchemy and pa_dbhealth, whether a
    module is being imported, and whether an ORM Session asked."""
    session = _session_file()
    caller = None
    via_session = False
    while frame is not None:
        filename = frame.f_code.co_filename
        via_session = via_session or filename == session
        if filename.startswith("<frozen importlib"):
            return caller, True, via_session
        if caller is None and not ORIGINS.skipped(filename):
            caller = f"{filename}:{frame.f_lineno} in {frame.f_code.co_name}"
        frame = frame.f_back
    return caller, False, via_session


def count(figure: str, by: int = 1) -> None:
    counts.count(figure, by)


def figures() -> dict[str, int]:
    """This process's counts since start: connections opened and closed by installed
    engines' pools, open now, probable leaks reported, connects retried and given up,
    connections handed to a thread waiting for the cap, and looks refused by the cap."""
    found = counts.snapshot()
    return {**found, "open": max(0, found["opened"] - found["closed"])}
