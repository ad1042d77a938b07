"""One look at an alias's server, for the Django face: the health view, ``dbcheck``,
``dbconnections`` and the middleware's cap report all ask through :func:`look_at_alias`.

Modelled on Django's ``connection.temporary_connection()``: the calling thread's connection
to the alias is used when it is open, alive and error-free; otherwise the look opens a
connection of its own (one attempt, with a connect timeout, never waiting at the cap) and
closes it again. Either way the question gets a bounded time (``core.look.within``): a
server that does not answer in time raises :class:`LookTimedOut`, and the connection it was
asked on is closed, never reused.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from django.db import DatabaseError, connections
from django.db.backends.base.base import BaseDatabaseWrapper

from pa_dbhealth import conf, tracker
from pa_dbhealth.core import liveness
from pa_dbhealth.core.look import LookTimedOut, connect_timeout_options, shut_down, within
from pa_dbhealth.core.retry import single_attempt

__all__ = ["LookTimedOut", "Question", "look_at_alias"]

T = TypeVar("T")
Question = Callable[[Any], T]


def look_at_alias(
    alias: str, question: Question[T], *, timeout: float | None = None, reuse: bool = True
) -> T:
    """``question(dbapi_connection)`` answered by ``alias``'s server within the bound.

    ``timeout`` (default ``HEALTH_CONNECT_TIMEOUT``) bounds the connect and, again, the
    answer. Raises Django's database errors, or :class:`LookTimedOut`.
    """
    seconds = timeout or conf.get_settings().HEALTH_CONNECT_TIMEOUT
    wrapper = connections[alias]
    raw = wrapper.connection
    if raw is not None and liveness.is_dead(raw) and not wrapper.in_atomic_block:
        _close(wrapper)  # the server closed it: of no use to anyone
        raw = None
    if reuse and raw is not None and not wrapper.errors_occurred:
        return _on_open(wrapper, raw, question, seconds)
    return _on_own(alias, question, seconds)


def _on_open(wrapper: BaseDatabaseWrapper, raw: Any, question: Question[T], seconds: float) -> T:
    try:
        with wrapper.wrap_database_errors:
            return within(seconds, lambda: question(raw), on_timeout=lambda: shut_down(raw))
    except LookTimedOut:
        wrapper.errors_occurred = True  # dead now: never reused
        if not wrapper.in_atomic_block:
            _close(wrapper)
        raise


def _on_own(alias: str, question: Question[T], seconds: float) -> T:
    opened: list[Any] = []
    abandoned = threading.Event()

    def work() -> T:
        tracker.mark_holder()
        probe = connections.create_connection(alias)
        settings = probe.settings_dict
        options = dict(settings.get("OPTIONS") or {})
        if not options.get("pool"):  # a pool keeps its own timeout
            for key, value in connect_timeout_options(probe.vendor, seconds).items():
                current = options.get(key)
                if not (isinstance(current, int | float) and 0 < current <= value):
                    options[key] = value
        probe.settings_dict = {**settings, "OPTIONS": options}
        try:
            with single_attempt():  # one attempt: a look answers at once, even at the cap
                probe.ensure_connection()
            opened.append(probe.connection)
            if abandoned.is_set():  # connected after the caller gave up: ask nothing
                raise LookTimedOut(seconds)
            with probe.wrap_database_errors:
                return question(probe.connection)
        finally:
            _close(probe)

    def give_up() -> None:
        abandoned.set()
        for raw in opened:
            shut_down(raw)

    return within(2 * seconds, work, on_timeout=give_up)


def _close(wrapper: BaseDatabaseWrapper) -> None:
    with contextlib.suppress(DatabaseError):  # a dead connection may complain: it is closed
        wrapper.close()
