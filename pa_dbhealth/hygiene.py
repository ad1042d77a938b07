"""The one rule of staleness: when a connection must be closed before it is used again.

A connection of the calling thread is stale when it is dead (its socket shows the server
closed it: ``core.liveness``, no round trip), obsolete (older than CONN_MAX_AGE, or its
autocommit was left changed), broken (an error occurred and it no longer answers a ping),
or idle for longer than the server's idle timeout minus ``TIMEOUT_MARGIN``, whatever
CONN_MAX_AGE says. Idle time is measured from the end of its last query (the tracker keeps
it). A connection in use (a cursor still open on it: a server-side iterator between two
chunks) is never closed, and a stale connection inside an atomic block is left, with a
warning. This is Django's ``close_old_connections`` plus the rules Django lacks.

The server's idle timeout is learned once per alias per process, from the first connection
that opens (one query, ``vendors.server_facts``); until then, or when the server cannot
say, ``PA_DBHEALTH["SERVER_IDLE_TIMEOUT"]`` is used.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ContextDecorator
from typing import Any, TypeVar, overload

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError
from django.db.backends.base.base import BaseDatabaseWrapper

from pa_dbhealth import tracker
from pa_dbhealth.conf import get_settings
from pa_dbhealth.core import liveness, staleness, vendors
from pa_dbhealth.core.look import in_look
from pa_dbhealth.core.timeouts import Learned
from pa_dbhealth.holders import server_of

logger = logging.getLogger(__name__)

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

# alias -> the idle timeout its server reported (None: the server drops no idle connection)
LEARNED = Learned()


def require_app(tool: str) -> None:
    """Raise ImproperlyConfigured when ``tool`` is used without the app installed: without
    its tracker nothing knows when a connection was last used, and the tools do nothing."""
    if not apps.is_installed("pa_dbhealth"):
        raise ImproperlyConfigured(
            f"{tool} needs 'pa_dbhealth' in INSTALLED_APPS (it installs the connection "
            "tracker the staleness rule reads); add it and restart."
        )


def server_idle_timeout(alias: str) -> float | None:
    """The server's idle timeout for ``alias``: as learned, else SERVER_IDLE_TIMEOUT."""
    return LEARNED.server_timeout(alias, get_settings().SERVER_IDLE_TIMEOUT)


def alias_idle_limit(alias: str) -> float | None:
    """Seconds after which a connection of ``alias`` is stale; None when the server has no
    idle timeout."""
    options = get_settings()
    return LEARNED.idle_limit(alias, options.SERVER_IDLE_TIMEOUT, options.TIMEOUT_MARGIN)


def forget_server_timeouts() -> None:
    """Learn the servers' idle timeouts again from the next connections (after the server's
    wait_timeout changed, or a connection was lost sooner than expected)."""
    LEARNED.forget()


def learn_server_timeout(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    """Receiver of ``connection_created``: ask the first connection of each alias (not a
    look's, which must stay bounded: the next connection is asked instead)."""
    alias = str(connection.alias)
    if LEARNED.knows(alias) or in_look():
        return
    if not vendors.is_applicable(connection.vendor):
        LEARNED.learn(alias, None)
        return
    account = server_of(connection.settings_dict, connection.vendor)
    staleness.learn(connection.connection, alias, LEARNED, account)


def stale_reason(
    connection: BaseDatabaseWrapper,
    *,
    now: float | None = None,
    idle_seconds: float | None = None,
    between_items: bool = False,
) -> str | None:
    """Why this open connection must be closed before it is used again, or None.

    ``now`` is ``time.monotonic()``; ``idle_seconds`` overrides the alias's idle limit;
    ``between_items`` (``keep_fresh``) does not count CONN_MAX_AGE = 0 as obsolete, since a
    loop item is not a request. Inside an atomic block only idleness is judged: the other
    reasons are no danger to the transaction, and Django judges them when it ends.
    """
    if connection.connection is None:
        return None
    if liveness.is_dead(connection.connection):
        return staleness.DEAD
    now = time.monotonic() if now is None else now
    if not connection.in_atomic_block:
        if connection.get_autocommit() != connection.settings_dict["AUTOCOMMIT"]:
            return staleness.AUTOCOMMIT
        if connection.errors_occurred:
            if not connection.is_usable():
                return staleness.BROKEN
            connection.errors_occurred = False
            connection.health_check_done = True  # type: ignore[attr-defined]
        close_at = connection.close_at
        if (
            close_at is not None
            and now >= close_at
            and not (between_items and connection.settings_dict.get("CONN_MAX_AGE") == 0)
        ):
            return staleness.MAX_AGE
    limit = alias_idle_limit(str(connection.alias)) if idle_seconds is None else idle_seconds
    used = tracker.last_used(connection)
    return staleness.idle(None if used is None else now - used, limit)


def refresh_connections(
    *,
    idle_seconds: float | None = None,
    between_items: bool = False,
    warned: set[str] | None = None,
    request_ends: bool = False,
) -> list[tuple[str, str]]:
    """Close the calling thread's stale connections; returns ``(alias, reason)`` of each.

    A stale connection inside an atomic block is left open and a warning is logged (once
    per alias when a ``warned`` set is given). ``request_ends`` (the middleware, before a
    short response goes out): a connection PARK will keep is left to Django, which closes
    it once the response is sent (:func:`parked_after_response`).
    """
    open_now = tracker.thread_connections()
    if not open_now:
        return []
    closed = []
    now = time.monotonic()
    for connection in open_now:
        if tracker.in_use(connection):
            continue  # a cursor is still open on it (an iterator between chunks): never closed
        if request_ends and parked_after_response(connection):
            continue
        reason = stale_reason(
            connection, now=now, idle_seconds=idle_seconds, between_items=between_items
        )
        if reason is None:
            continue
        alias = str(connection.alias)
        if connection.in_atomic_block:
            if warned is None or alias not in warned:
                logger.warning(
                    "Connection %r is stale (%s) but inside an atomic block: left open. "
                    "Use fresh_connections/keep_fresh outside transaction.atomic().",
                    alias,
                    reason,
                )
                if warned is not None:
                    warned.add(alias)
            continue
        logger.debug("Closing connection %r: %s.", alias, reason)
        try:
            connection.close()
        except DatabaseError as exc:  # closing a dead connection may complain; it is closed
            logger.debug("Closing connection %r raised %s", alias, exc)
        if reason != staleness.MAX_AGE or connection.settings_dict.get("CONN_MAX_AGE") != 0:
            staleness.closed(reason, get_settings().REGISTRY_DIR)  # not CONN_MAX_AGE = 0's
        closed.append((alias, reason))
    return closed


def parked_after_response(connection: BaseDatabaseWrapper) -> bool:
    """Whether Django's close of ``connection`` once the response is sent (CONN_MAX_AGE = 0)
    will park it (PARK, :mod:`pa_dbhealth.backends.mysql`) while nobody waits in the line
    for its slot: closed before the response, it would only be parked sooner, and the
    response would wait for it. Whatever may keep it from being parked (an error, an
    atomic block) is judged before the response, as ever."""
    ticket = getattr(connection, "_pa_dbhealth_ticket", None)
    return (
        ticket is not None
        and connection.settings_dict.get("CONN_MAX_AGE") == 0
        and not connection.in_atomic_block
        and not connection.errors_occurred
        and get_settings().PARK
        and not ticket.line.someone_waits
    )


class FreshConnections(ContextDecorator):
    """``fresh_connections()``: a context manager and decorator (sync and async)."""

    def __enter__(self) -> FreshConnections:
        require_app("fresh_connections")
        tracker.mark_holder()
        refresh_connections()
        return self

    def __exit__(self, *exc_info: object) -> None:
        refresh_connections()

    def __call__(self, func: F) -> F:
        if not iscoroutinefunction(func):
            return super().__call__(func)

        @functools.wraps(func)
        async def inner(*args: Any, **kwargs: Any) -> Any:
            await sync_to_async(self.__enter__)()
            try:
                return await func(*args, **kwargs)
            finally:
                await sync_to_async(refresh_connections)()

        return inner  # type: ignore[return-value]


@overload
def fresh_connections(func: F) -> F: ...
@overload
def fresh_connections(func: None = None) -> FreshConnections: ...
def fresh_connections(func: F | None = None) -> F | FreshConnections:
    """Close the calling thread's stale connections on entry and on exit (also when the body
    raises). Use as ``@fresh_connections``, ``@fresh_connections()`` or
    ``with fresh_connections():``; works on functions, methods and coroutine functions."""
    if func is None:
        return FreshConnections()
    return FreshConnections()(func)


def keep_fresh(iterable: Iterable[T], every: float | None = None) -> Iterator[T]:
    """Yield the items of ``iterable``, closing the calling thread's stale connections before
    each one, so a loop that pauses for minutes never meets a dead connection.

    ``every``: seconds of idleness after which a connection is replaced between items
    (default: the server's idle timeout minus TIMEOUT_MARGIN). Costs no query per item.
    """
    if every is not None and not (isinstance(every, int | float) and 0 < every < float("inf")):
        raise ValueError(f"every must be a number of seconds > 0, not {every!r}")
    require_app("keep_fresh")
    return _keep_fresh(iterable, every)


def _keep_fresh(iterable: Iterable[T], every: float | None) -> Iterator[T]:
    tracker.mark_holder()
    warned: set[str] = set()
    for item in iterable:
        refresh_connections(idle_seconds=every, between_items=True, warned=warned)
        yield item


def _forget_on_databases_change(*, setting: str, **kwargs: Any) -> None:
    if setting == "DATABASES":
        forget_server_timeouts()


def install() -> None:
    """Connect the receivers (``AppConfig.ready`` calls this; calling it again is harmless)."""
    from django.core.signals import setting_changed
    from django.db.backends.signals import connection_created

    connection_created.connect(learn_server_timeout, dispatch_uid="pa_dbhealth.hygiene.learn")
    setting_changed.connect(
        _forget_on_databases_change, dispatch_uid="pa_dbhealth.hygiene.databases"
    )
