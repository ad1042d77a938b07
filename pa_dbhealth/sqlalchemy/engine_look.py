"""One look at an engine's server, bounded in time: the audit, ``engine_options``, the health
view and the commands ask through :func:`look_at_engine`.

The look opens a DB-API connection of its own, made as the engine's pool makes them (its
URL, ``connect_args``, ``creator`` and ``do_connect`` listeners), with a connect timeout and
a single attempt, asks, and closes it: the pool is not touched, so a look never waits for
a pool slot and never leaves a connection in it. The whole look is bounded by
``core.look.within``: a server that does not answer in time raises :class:`LookTimedOut`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Engine

from pa_dbhealth.core.errors import classify
from pa_dbhealth.core.liveness import close_quietly
from pa_dbhealth.core.look import LookTimedOut, connect_timeout_options, shut_down, within
from pa_dbhealth.core.retry import single_attempt
from pa_dbhealth.sqlalchemy import tracker
from pa_dbhealth.sqlalchemy.engines import vendor_of

__all__ = ["LookTimedOut", "look_at_engine"]

T = TypeVar("T")


class _Bound(threading.local):
    seconds: float | None = None  # the connect timeout of the look running in this thread


_bound = _Bound()
_bounded_lock = threading.Lock()


def _bound_connects(engine: Engine) -> None:
    """A ``do_connect`` listener, first in line, that gives a look's connect its timeout."""
    with _bounded_lock:
        if not event.contains(engine, "do_connect", _timeout):
            event.listen(engine, "do_connect", _timeout, insert=True)


def _timeout(dialect: Any, conn_rec: Any, cargs: Any, cparams: dict[str, Any]) -> None:
    seconds = _bound.seconds
    if seconds is None:
        return
    for key, value in connect_timeout_options(vendor_of(dialect.name), seconds).items():
        current = cparams.get(key)
        if not (isinstance(current, int | float) and 0 < current <= value):
            cparams[key] = value


def _creator(engine: Engine) -> Callable[[Any], Any]:
    # The pool's own creator (what Pool.recreate() passes on): a connect exactly like the
    # pool's, without a pool entry. Called with no entry, as SQLAlchemy's default allows.
    invoke: Callable[[Any], Any] = engine.pool._invoke_creator
    return invoke


def look_at_engine(engine: Engine, question: Callable[[Any], T], *, timeout: float) -> T:
    """``question(dbapi_connection)`` answered by the engine's server within ``timeout``
    seconds for the connect and as long again for the answer. Raises the driver's error
    (classify it with ``core.errors.classify``) or :class:`LookTimedOut`."""
    _bound_connects(engine)
    opened: list[Any] = []
    abandoned = threading.Event()

    def work() -> T:
        _bound.seconds = timeout
        try:
            with single_attempt():  # a look answers at once, even at the cap
                raw = _creator(engine)(None)
        except Exception as exc:
            if classify(exc).kind.is_cap:  # not a give-up: nothing waited
                tracker.count("probes_refused")
            raise
        finally:
            _bound.seconds = None
        opened.append(raw)
        try:
            if abandoned.is_set():  # connected after the caller gave up: ask nothing
                raise LookTimedOut(timeout)
            return question(raw)
        finally:
            close_quietly(raw)  # a dead connection may complain: closed

    def give_up() -> None:
        abandoned.set()
        for raw in opened:
            shut_down(raw)

    return within(2 * timeout, work, on_timeout=give_up, name="pa_dbhealth-look")
