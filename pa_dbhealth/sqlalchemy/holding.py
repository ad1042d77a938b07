"""This process's pooled connections in the registry of holders (``core.registry``), so
``dbconnections`` in any process (Django's, ``flask dbconnections``, ``python -m
pa_dbhealth connections``) names who holds them, even with the cap full.

Fed by the pool events ``install()`` registers. For each DB-API connection: the server's
id for it (no query), the thread of its last checkout, when it was opened and last used,
the first frame of user code that opened it (the whole stack with ``TRACK_ORIGINS``), and
the probable leak the tracker found (checked out at import, by a module-level session, or
for longer than the engine's threshold).

A request pays nothing for it: a connection opened inside a request (the Flask face says
which code runs in one, :data:`in_request`) is not written while the request runs; it is
written when it outlives the request (still open, in the pool, when the request's app
context is popped), or once it has been open :data:`PUBLISH_AFTER` seconds. A connection
opened outside a request (a script, a ``flask`` command, a thread, an import) is written at
once; its closing rewrites the file, and the process's exit removes it. Otherwise the file
is refreshed at most every ``REFRESH_EVERY`` seconds, at a checkout or a checkin. Outside
requests a timer (``leak_timer``) notices a checkout held past the threshold while nothing
else happens.
The registry failing costs one debug line (``core.registry.publishing``), never an error.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from pa_dbhealth.core import registry
from pa_dbhealth.core.options import Options
from pa_dbhealth.core.registry import holders as account_holders
from pa_dbhealth.core.registry.holders import AccountHolders
from pa_dbhealth.core.server_id import server_id
from pa_dbhealth.core.vendors import AccountSnapshot
from pa_dbhealth.sqlalchemy import leak_timer, tracker
from pa_dbhealth.sqlalchemy.engines import engine_account, engine_vendor

SOURCE = "sqlalchemy"  # this face's list in the process's file
PUBLISH_AFTER = registry.PUBLISH_AFTER

# Whether the calling thread serves a request now; the Flask face sets it.
in_request: Callable[[], bool] = lambda: False  # noqa: E731


@dataclass(frozen=True)
class EngineKey:
    """What the registry needs of one installed engine."""

    name: str
    server: str
    account: str
    vendor: str
    where: Path | None
    origins: bool
    checkouts: tracker.Checkouts


@dataclass
class Opened:
    """One open DB-API connection of an installed engine."""

    engine: EngineKey
    entry: weakref.ref[Any]  # its pool entry: whose checkout it is
    id: int | None
    opened_at: float  # time.time()
    started: float  # time.monotonic()
    caller: str | None
    stack: str | None
    thread: str
    transient: bool  # opened inside a request that has not ended
    last_used: float

    def held(self) -> registry.HeldConnection:
        entry = self.entry()
        checkout = None if entry is None else self.engine.checkouts.open.get(id(entry))
        return registry.HeldConnection(
            server=self.engine.server,
            account=self.engine.account,
            vendor=self.engine.vendor,
            id=self.id,
            name=self.engine.name,
            thread=checkout.thread_name if checkout is not None else self.thread,
            opened_at=self.opened_at,
            last_used=self.last_used,
            caller=self.caller,
            stack=self.stack,
            leak=None if checkout is None else checkout.leak,
        )


class _Local(threading.local):
    transient: list[int] | None = None  # keys of connections this thread's request opened


_lock = threading.Lock()
_open: dict[int, Opened] = {}  # by id() of the DB-API connection
_published: set[int] = set()
_local = _Local()
_refresh_at = 0.0
_place: Path | None = None  # where this process writes: the first installed engine's registry


def describe(
    engine: Engine, name: str, options: Options, checkouts: tracker.Checkouts
) -> EngineKey:
    """``engine`` as the registry keys it."""
    global _place
    vendor = engine_vendor(engine)
    where = registry.directory(options.REGISTRY_DIR)
    if _place is None:
        _place = where
    server, account = engine_account(engine)
    return EngineKey(name, server, account, vendor, where, bool(options.TRACK_ORIGINS), checkouts)


def opened(engine: EngineKey, raw: Any, entry: Any) -> None:
    """A new connection (or one handed over by a sibling thread) entered the pool."""
    caller, _, _ = tracker.where(sys._getframe(1))
    stack = None
    if engine.origins:
        stack = "".join(traceback.format_stack(sys._getframe(1))[-20:]).rstrip()
    transient = in_request()
    now = time.time()
    record = Opened(
        engine,
        weakref.ref(entry),
        server_id(raw),
        now,
        time.monotonic(),
        caller,
        stack,
        threading.current_thread().name,
        transient,
        now,
    )
    with _lock:
        earlier = _open.get(id(raw))
        if earlier is not None:  # handed over: the connection keeps its history
            record.opened_at, record.caller = earlier.opened_at, earlier.caller
            record.stack = earlier.stack
        _open[id(raw)] = record
    if transient:
        if _local.transient is None:
            _local.transient = []
        _local.transient.append(id(raw))
        refresh()
    else:
        publish()


def used(raw: Any, checked_out: bool) -> None:
    """A checkout or a checkin: last use now; refresh the file when due."""
    record = _open.get(id(raw))
    if record is not None:
        record.last_used = time.time()
        if checked_out and not record.transient and not in_request():
            # outside requests only: a request never starts a thread
            leak_timer.watch(record.engine.checkouts, publish)
    refresh()


def closed(raw: Any) -> None:
    """The pool closed a connection (or it was closed after being detached)."""
    with _lock:
        _open.pop(id(raw), None)
        was_published = id(raw) in _published
    if was_published:
        publish()


def request_ended(*args: Any, **kwargs: Any) -> None:
    """The request's app context was popped: its connections that are still open outlived
    it. Costs a thread-local lookup for a request that opened none."""
    mine = _local.transient
    if not mine:
        return
    _local.transient = None
    outlived = [r for key in mine if (r := _open.get(key)) is not None and r.transient]
    for record in outlived:
        record.transient = False
    if outlived:
        publish()


def refresh() -> None:
    """Publish when due (every ``REFRESH_EVERY`` seconds), or at once after a new leak."""
    if time.monotonic() >= _refresh_at:
        publish()


def publish() -> None:
    """Write this process's connections that may be shown: opened outside a request,
    outlived their request, or open for :data:`PUBLISH_AFTER` seconds. Never raises."""
    global _refresh_at
    now = time.monotonic()
    _refresh_at = now + registry.REFRESH_EVERY
    with _lock:
        # One file per process: an engine whose REGISTRY_DIR differs (or is off) is left out.
        shown = {
            key: record
            for key, record in _open.items()
            if _place is not None
            and record.engine.where == _place
            and (not record.transient or now - record.started >= PUBLISH_AFTER)
        }
        _published.clear()
        _published.update(shown)
    held = [record.held() for record in shown.values()]
    registry.publisher.publish(_place, held, source=SOURCE)


def leak_found() -> None:
    """A checkout became a probable leak: the next occasion writes it."""
    global _refresh_at
    _refresh_at = 0.0


def account_holders_of(
    engine: Engine, options: Options, snapshot: AccountSnapshot | None = None
) -> AccountHolders:
    """What the registry says about ``engine``'s account on its server (joined with the
    server's list when given)."""
    server, account = engine_account(engine)
    where = registry.directory(options.REGISTRY_DIR)
    return account_holders.read(where, server, account, snapshot)


def _after_fork() -> None:
    global _lock, _refresh_at
    _lock = threading.Lock()
    _refresh_at = 0.0
    _published.clear()
    _open.clear()  # the parent's connections: the parent holds them
    _local.transient = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
