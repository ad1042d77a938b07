"""``install(engine)``: pool and engine events that keep an engine's connections healthy.

- **checkout**: a connection the server closed (``core.liveness``: the socket, no round
  trip), one idle longer than the server's idle timeout minus ``TIMEOUT_MARGIN``, or one
  with a transaction open is not handed out: ``DisconnectionError`` makes the pool replace
  it (SQLAlchemy's "Dealing with Disconnects", the pessimistic way, without a ping).
- **connect**: retried while the cap is full, handed over by a sibling thread (``connect``).
- **first connect**: the server's idle timeout is learned once per engine (one query).
- **checkout / checkin**: each checkout is tracked and probable leaks are logged with the
  line of user code that checked the connection out (``tracker``).
- **before cursor execute**: a statement that would pin a multiplexer's connection is
  counted at the line that ran it (``pins``).
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError

from pa_dbhealth.core import handoff, liveness, staleness
from pa_dbhealth.core.options import Options, effective
from pa_dbhealth.core.timeouts import Learned
from pa_dbhealth.sqlalchemy import connect, holding, pins, tracker
from pa_dbhealth.sqlalchemy.engines import engine_account, engine_key, engine_vendor

__all__ = ["LEAK_AFTER", "LEARNED", "install", "installed"]

logger = logging.getLogger("pa_dbhealth.sqlalchemy")

LEAK_AFTER = 60.0  # seconds a connection may stay checked out before it is called a leak
LEARNED = Learned()  # engine key -> the idle timeout its server reported
CHECKED_IN = "pa_dbhealth_checked_in"  # entry.info: time.monotonic() it was last given back


@dataclass
class Installed:
    """What ``install()`` keeps for one engine."""

    key: str
    vendor: str
    options: Options
    room: handoff.WaitingRoom
    checkouts: tracker.Checkouts
    published: holding.EngineKey  # how the registry of holders names it
    account: connect.Account | None  # the account's line (MySQL), as core.line keys it

    def idle_limit(self) -> float | None:
        return LEARNED.idle_limit(
            self.key, self.options.SERVER_IDLE_TIMEOUT, self.options.TIMEOUT_MARGIN
        )


_installed: weakref.WeakKeyDictionary[Engine, Installed] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def installed(engine: Engine) -> Installed | None:
    """What ``install()`` set up for ``engine``, or None."""
    return _installed.get(engine)


def _options(options: Options | Mapping[str, Any] | None) -> Options:
    return options if isinstance(options, Options) else effective(options)


def install(
    engine: Engine,
    options: Options | Mapping[str, Any] | None = None,
    *,
    leak_after: float = LEAK_AFTER,
    name: str = "default",
) -> Engine:
    """Add pa_dbhealth's events to ``engine`` (its pool included, also after ``dispose()``)
    and return it. ``options`` are the ``PA_DBHEALTH`` keys (a dict, validated leniently: a
    bad value counts as its default; ``core.options.problems`` lists them); ``name`` is what
    the registry of holders calls the engine. Installing again changes nothing."""
    with _lock:
        if engine in _installed:
            return engine
        opts = _options(options)
        checkouts = tracker.Checkouts(engine_key(engine), leak_after, holding.leak_found)
        state = Installed(
            key=engine_key(engine),
            vendor=engine_vendor(engine),
            options=opts,
            room=handoff.WaitingRoom(),
            checkouts=checkouts,
            published=holding.describe(engine, name, opts, checkouts),
            account=_account(engine),
        )
        _installed[engine] = state
    event.listen(
        engine,
        "do_connect",
        connect.retrying_connect(
            state.key, state.options, state.room, state.checkouts.sweep, state.account
        ),
    )
    event.listen(engine, "connect", _on_connect(state))
    event.listen(engine, "checkout", _on_checkout(state))
    event.listen(engine, "checkin", _on_checkin(state))
    event.listen(engine, "close", _on_close)
    event.listen(engine, "close_detached", _on_close_detached)
    event.listen(engine, "handle_error", _on_error)
    pins.listen(engine, state.vendor, opts)
    return engine


def _account(engine: Engine) -> connect.Account | None:
    """``(server, account)`` of a MySQL engine, keyed as the Django backend keys its own."""
    if engine_vendor(engine) != "mysql":
        return None
    return engine_account(engine)


def _on_connect(state: Installed) -> Any:
    def connected(dbapi_connection: Any, entry: Any) -> None:
        entry.info[CHECKED_IN] = time.monotonic()
        holding.opened(state.published, dbapi_connection, entry)
        if entry.info.pop(connect.HANDED, False):
            return  # handed over by a sibling thread: neither opened nor learned anew
        tracker.count("opened")
        if not LEARNED.knows(state.key):
            _learn(state, dbapi_connection)

    return connected


def _learn(state: Installed, dbapi_connection: Any) -> None:
    """Ask the server's idle timeout and cap once per engine (one query)."""
    staleness.learn(dbapi_connection, state.key, LEARNED, state.account)


def stale_reason(state: Installed, dbapi_connection: Any, entry: Any, now: float) -> str | None:
    """Why a connection must not be handed out, or None."""
    last = entry.info.get(CHECKED_IN)
    idle = now - last if isinstance(last, float) else None
    found = staleness.reason(dbapi_connection, idle, state.idle_limit())
    if found is None and liveness.in_transaction(dbapi_connection):
        return staleness.LEFT_IN_TRANSACTION
    return found


def _on_checkout(state: Installed) -> Any:
    def checked_out(dbapi_connection: Any, entry: Any, proxy: Any) -> None:
        reason = stale_reason(state, dbapi_connection, entry, time.monotonic())
        if reason is not None:
            logger.debug("replacing a connection to %s at checkout: %s", state.key, reason)
            staleness.closed(reason, state.options.REGISTRY_DIR)
            raise DisconnectionError(f"pa_dbhealth: {reason}")
        state.checkouts.checked_out(entry, proxy)
        state.checkouts.sweep()
        holding.used(dbapi_connection, checked_out=True)

    return checked_out


def _on_checkin(state: Installed) -> Any:
    def checked_in(dbapi_connection: Any, entry: Any) -> None:
        state.checkouts.checked_in(entry)
        if dbapi_connection is None:
            return  # invalidated: already closed
        entry.info[CHECKED_IN] = time.monotonic()
        holding.used(dbapi_connection, checked_out=False)
        connect.hand_over(dbapi_connection, entry, state.options, state.room)

    return checked_in


def _on_close(dbapi_connection: Any, entry: Any) -> None:
    connect.give_back_token(entry)  # first: the next in line wakes while this one closes
    tracker.count("closed")
    holding.closed(dbapi_connection)


def _on_close_detached(dbapi_connection: Any) -> None:
    tracker.count("closed")
    holding.closed(dbapi_connection)


def _on_error(context: Any) -> None:
    """Mark the pool entry of a connection an error occurred on: it is not handed over."""
    connection = context.connection
    if connection is None or connection.invalidated or connection.closed:
        return
    try:
        connection.connection.info[connect.ERRORED] = True
    except Exception as exc:  # marking is a nicety: never hide the original error
        logger.debug("could not mark the connection after an error: %s", exc)
