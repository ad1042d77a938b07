"""Handoff as each face does it, for ``test_handoff``'s scenarios: a giver (a connection of
this thread, handed over when it is closed) and a receiver (a thread whose connect waits at
the cap), in the Django face (the retrying backend's ``DatabaseWrapper``, one alias) and in
the SQLAlchemy face (an ``install()``-ed NullPool engine).

The SQLAlchemy engine does not reset a connection it is given back
(``pool_reset_on_return=None``): the handoff rule then sees what the giver left, as the
Django backend's does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.db import connections
from holders import Holder

from pa_dbhealth import tracker as django_tracker
from pa_dbhealth.backends.mysql.base import DatabaseWrapper
from pa_dbhealth.core import handoff

ALIAS = "handoff"
# Handoff is how threads of one process wait when the host's line is off (or unavailable):
# with the line, a closing connection's token goes to whoever waited longest, anywhere.
NO_LINE = {"LINE": False}
# ``settled_ids`` (conftest): the account's connection ids once ``settled(ids)`` holds.
Settled = Callable[[Callable[[list[int]], bool]], list[int]]


class Receiver(Holder):
    """Connects in its own thread (connections belong to threads), reports what it got:
    the server's id of its connection, after running ``statements`` on it."""

    def __init__(self, connect: Callable[[tuple[str, ...]], int], *statements: str) -> None:
        super().__init__(opener=self._open, closer=self._close)
        self._connect = connect
        self.statements = statements
        self.waited = 0.0
        self.closers: list[Callable[[], None]] = []

    def _open(self) -> int:
        started = time.monotonic()
        got = self._connect(self.statements)
        self.waited = time.monotonic() - started
        return got

    def _close(self) -> None:
        for close in self.closers:
            close()

    @property
    def got(self) -> int | None:
        got: int | None = self.value
        return got

    def result(self) -> int:
        got: int = self.release()
        return got


def run_statements(cursor: Any, statements: tuple[str, ...]) -> int:
    cursor.execute("SELECT CONNECTION_ID()")
    got = int(cursor.fetchone()[0])
    for statement in statements:
        cursor.execute(statement)
    return got


def start_waiting(receiver: Receiver, room: handoff.WaitingRoom) -> Receiver:
    """Start ``receiver`` and return once it waits in the room (its connect was refused)."""
    receiver.start()
    deadline = time.monotonic() + 5
    while room.waiting < 1:
        assert time.monotonic() < deadline, "the receiver never waited for the cap"
        time.sleep(0.005)
    return receiver


class DjangoGiver:
    def __init__(self, settings_dict: dict[str, Any]) -> None:
        self.wrapper = DatabaseWrapper(settings_dict, alias=ALIAS)
        connections[ALIAS] = self.wrapper  # so that transaction.atomic(using=ALIAS) finds it
        self.wrapper.ensure_connection()
        self.id = int(self.wrapper.connection.thread_id())
        self.raw = self.wrapper.connection

    def close(self) -> None:
        self.wrapper.close()

    def forget(self) -> None:
        self.wrapper.close()
        if connections[ALIAS] is self.wrapper:
            del connections[ALIAS]


class DjangoHandoff:
    """The Django face: connections of the alias "handoff" through the retrying backend."""

    def __init__(self, settings_dict: dict[str, Any]) -> None:
        self.settings_dict = settings_dict

    def room(self) -> handoff.WaitingRoom:
        return handoff.room(ALIAS)

    def handoffs(self) -> int:
        return int(django_tracker.figures()["connect_handoffs"])

    def giver(self) -> DjangoGiver:
        return DjangoGiver(self.settings_dict)

    def receiver(self, *statements: str) -> Receiver:
        def connect(statements: tuple[str, ...]) -> int:
            wrapper = DatabaseWrapper(self.settings_dict, alias=ALIAS)
            receiver.closers.append(wrapper.close)
            wrapper.ensure_connection()
            with wrapper.cursor() as cursor:
                return run_statements(cursor, statements)

        receiver = Receiver(connect, *statements)
        return receiver


class EngineGiver:
    def __init__(self, engine: Any) -> None:
        self.fairy = engine.raw_connection()
        self.raw = self.fairy.dbapi_connection
        cursor = self.fairy.cursor()
        self.id = run_statements(cursor, ())
        cursor.close()

    def close(self) -> None:
        self.fairy.close()  # given back to the pool: handed over, or closed (NullPool)

    def forget(self) -> None:
        """Nothing to do: the engine is disposed after the test (``make_engine``)."""


class EngineHandoff:
    """The SQLAlchemy face: connections of one ``install()``-ed NullPool engine."""

    def __init__(self, engine: Any) -> None:
        from pa_dbhealth.sqlalchemy import events

        self.engine = engine
        state = events.installed(engine)
        assert state is not None
        self.state = state

    def room(self) -> handoff.WaitingRoom:
        room: handoff.WaitingRoom = self.state.room
        return room

    def handoffs(self) -> int:
        from pa_dbhealth.sqlalchemy import tracker

        return int(tracker.figures()["connect_handoffs"])

    def giver(self) -> EngineGiver:
        return EngineGiver(self.engine)

    def receiver(self, *statements: str) -> Receiver:
        def connect(statements: tuple[str, ...]) -> int:
            fairy = self.engine.raw_connection()
            receiver.closers.append(fairy.close)
            cursor = fairy.cursor()
            got = run_statements(cursor, statements)
            cursor.close()
            fairy.commit()
            return got

        receiver = Receiver(connect, *statements)
        return receiver
