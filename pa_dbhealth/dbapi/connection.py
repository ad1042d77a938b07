"""A DB-API connection that survives the host's idle kills without ever running a statement
twice.

Before each statement (and each new cursor) the connection is checked without a round trip
(``core.liveness``): when the server has closed it, or it has been idle longer than the
server's timeout minus the margin, it is replaced by a new one, but only when no
transaction is open on it. Inside a transaction a lost connection is never replaced: its
work is gone on the server, so :class:`TransactionLost` is raised, and again on every
statement and ``commit()`` until ``rollback()``. A statement that fails is never run again:
a connection lost while it ran (2013, 2006) raises the driver's error, since whether it took
effect is unknown; the next statement gets a new connection.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from typing import Any

from pa_dbhealth.core import liveness
from pa_dbhealth.core.connect import Ticket
from pa_dbhealth.core.errors import Kind, classify
from pa_dbhealth.core.options import Options
from pa_dbhealth.core.timeouts import idle_limit
from pa_dbhealth.dbapi import holding
from pa_dbhealth.dbapi.opening import Target, open_in_line, timeouts


class TransactionLost(Exception):
    """The connection was lost inside a transaction: the server rolled the transaction back.
    Call ``rollback()``, then run the whole transaction again."""


class Connection:
    """What :func:`pa_dbhealth.dbapi.connect` returns; the driver's connection is ``raw``."""

    def __init__(self, target: Target, connect_retry: float, timeout_margin: float) -> None:
        self._target = target
        self._budget = connect_retry
        self._margin = timeout_margin
        self._autocommit: bool | None = None  # None: the driver's default, never changed
        self._dirty = False  # statements ran since the last commit or rollback
        self._lost: TransactionLost | None = None
        self._broken = False  # a statement lost the connection
        self._closed = False
        self.generation = 0  # how many times the connection was replaced
        self._raw: Any = None
        self._ticket: Ticket | None = None
        self._open()

    # --- the DB-API -------------------------------------------------------------------------

    @property
    def raw(self) -> Any:
        """The driver's connection now (a new one after a reconnect)."""
        return self._raw

    def cursor(self, *args: Any, **kwargs: Any) -> Cursor:
        self.ready()
        return Cursor(self, args, kwargs)

    def commit(self) -> None:
        self._refuse_lost()
        if self._raw is not None:  # None: dropped since, nothing ran on a new one yet
            self._raw.commit()
        self._dirty = False

    def rollback(self) -> None:
        """Roll back; after :class:`TransactionLost`, forget the lost connection instead."""
        self._dirty = False
        if self._raw is None:
            return
        if self._lost is not None or self._broken or liveness.is_dead(self._raw) is True:
            self._lost = None
            self._drop()  # the server rolled back already; the next statement reconnects
            return
        self._raw.rollback()

    def autocommit(self, on: bool) -> None:
        self._autocommit = bool(on)
        self.ready()
        self._raw.autocommit(self._autocommit)

    def close(self) -> None:
        """Close the driver's connection (the server rolls back what was not committed),
        give its place in the line back and withdraw it from the registry."""
        self._closed = True
        self._drop()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- the rule before each statement ------------------------------------------------------

    def ready(self) -> bool:
        """Make the connection fit for a statement; whether a transaction is open on it."""
        if self._closed:
            raise self._target.driver.InterfaceError("the connection is closed")
        self._refuse_lost()
        if self._raw is None:
            self._open()
            return False
        in_transaction = self._in_transaction()
        dead = self._broken or liveness.is_dead(self._raw) is True
        if in_transaction:
            if dead:
                self._lost = TransactionLost(
                    "the connection was lost inside a transaction (the server closed it: idle "
                    "too long, killed or restarted) and the server rolled the transaction "
                    "back: call rollback() and run the whole transaction again"
                )
                raise self._lost
            return True
        if dead or self._idle_too_long():
            self._drop()
            self._open()
        return False

    def ran(self, was_in_transaction: bool, error: BaseException | None) -> None:
        """A statement ended (``error``: how it failed). A lost connection is dropped; inside
        a transaction (or a statement that would have started one) it is lost for good."""
        self.last_end = time.monotonic()
        holding.used(self)
        if self._autocommit is not True:
            self._dirty = True
        if error is None or classify(error).kind is not Kind.LOST:
            return
        self._broken = True
        if was_in_transaction or self._autocommit is not True:
            self._lost = TransactionLost(
                "the connection was lost during a statement inside a transaction: the server "
                "rolled the transaction back, and whether this statement ran is unknown; call "
                "rollback() and run the whole transaction again"
            )
            raise self._lost from error

    def _refuse_lost(self) -> None:
        if self._lost is not None:
            raise self._lost

    def _in_transaction(self) -> bool:
        said = liveness.in_transaction(self._raw)
        if said is not None:
            return said
        return self._dirty and self._autocommit is not True

    def _idle_too_long(self) -> bool:
        timeout = timeouts.server_timeout(self._target.key, Options.SERVER_IDLE_TIMEOUT)
        if timeout is None:
            return False
        limit = idle_limit(timeout, self._margin).seconds
        return time.monotonic() - self.last_end > limit

    def _open(self) -> None:
        self._raw, self._ticket = open_in_line(self._target, self._budget)
        self._broken = False
        self.generation += 1
        self.last_end = time.monotonic()
        if self._autocommit is not None:
            self._raw.autocommit(self._autocommit)
        holding.opened(self, self._target)

    def _drop(self) -> None:
        raw, ticket = self._raw, self._ticket
        self._raw, self._ticket = None, None
        if raw is not None:
            holding.closed(self)
            liveness.close_quietly(raw)  # a dead connection may complain: it is gone
        if ticket is not None:
            ticket.give_back()


class Cursor:
    """The driver's cursor, on whatever connection is current when a statement runs."""

    def __init__(self, connection: Connection, args: Sequence[Any], kwargs: dict[str, Any]):
        self.connection = connection
        self._args, self._kwargs = args, kwargs
        self._inner: Any = None
        self._generation = -1

    def _statement(self, method: str, *args: Any) -> Any:
        was_in_transaction = self.connection.ready()
        if self._generation != self.connection.generation:
            self._inner = self.connection.raw.cursor(*self._args, **self._kwargs)
            self._generation = self.connection.generation
        try:
            result = getattr(self._inner, method)(*args)
        except Exception as exc:
            self.connection.ran(was_in_transaction, exc)
            raise
        self.connection.ran(was_in_transaction, None)
        return result

    def execute(self, query: str, args: Any = None) -> Any:
        return self._statement("execute", query, args)

    def executemany(self, query: str, args: Any) -> Any:
        return self._statement("executemany", query, args)

    def callproc(self, name: str, args: Any = ()) -> Any:
        return self._statement("callproc", name, args)

    def __getattr__(self, name: str) -> Any:  # fetchone, rowcount, lastrowid, ...
        if self._inner is None:
            raise AttributeError(name)
        return getattr(self._inner, name)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._inner)

    def close(self) -> None:
        if self._inner is not None:
            with contextlib.suppress(Exception):
                self._inner.close()

    def __enter__(self) -> Cursor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
