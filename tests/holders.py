"""Threads that open a database connection and hold it until told to let go.

    with Holder("worker"):                    # opened when the block starts
        ...                                   # closed (in its thread) when it ends
    holder = Holder(opener=connect).hold()    # the same, by hand
    value = holder.release()                  # what ``opener`` returned; its error re-raised

Connections belong to the thread that opened them, so the opening and the closing both run
in the holder's thread. The ``holders`` fixture (conftest) releases a test's holders after it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db import connections


def open_default() -> None:
    connections["default"].ensure_connection()


def open_and_tell(alias: str = "default") -> int:
    """Open the thread's connection to ``alias``; the server's id for it."""
    connections[alias].ensure_connection()
    return int(connections[alias].connection.thread_id())


class Holder(threading.Thread):
    """Runs ``opener`` (default: open the thread's "default" connection), waits until
    released, then runs ``closer`` (default: close the thread's connections)."""

    def __init__(
        self,
        name: str | None = None,
        opener: Callable[[], Any] | None = None,
        closer: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(name=name, daemon=True)
        self.opener = opener or open_default
        self.closer = closer or connections.close_all
        self.opened = threading.Event()  # ``opener`` returned or raised
        self.released = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.value = self.opener()
        except BaseException as exc:  # reported to the test's thread
            self.error = exc
        finally:
            self.opened.set()
        if self.error is None:
            self.released.wait(30)
        self.closer()

    def hold(self, timeout: float = 10) -> Holder:
        """Start, and return once the connection is open (or raise why it is not)."""
        self.start()
        assert self.opened.wait(timeout), f"{self.name} did not open within {timeout} s"
        if self.error is not None:
            raise self.error
        return self

    def release(self, timeout: float = 15) -> Any:
        """Let go: the thread closes and ends. Returns what ``opener`` returned."""
        self.released.set()
        self.join(timeout)
        assert not self.is_alive(), f"{self.name} did not end within {timeout} s"
        if self.error is not None:
            raise self.error
        return self.value

    def __enter__(self) -> Holder:
        return self.hold()

    def __exit__(self, *exc_info: object) -> None:
        self.released.set()
        self.join(10)


class Holders:
    """The holders of one test, named ``holder-1``, ``holder-2``, ... in order."""

    def __init__(self) -> None:
        self.started: list[Holder] = []

    def hold(self, count: int, opener: Callable[[], Any] | None = None) -> list[Holder]:
        """``count`` more threads, each holding a connection opened by ``opener``."""
        new = [Holder(f"holder-{len(self.started) + n}", opener) for n in range(1, count + 1)]
        for holder in new:
            self.started.append(holder.hold())
        return new

    def named(self, name: str, alias: str = "default") -> int:
        """One more thread, named ``name``, holding a connection to ``alias`` (as a
        forgotten poller would); the server's id for the connection."""
        holder = Holder(name, lambda: open_and_tell(alias)).hold()
        self.started.append(holder)
        return int(holder.value)

    def release_all(self) -> None:
        for holder in self.started:
            holder.released.set()
        for holder in self.started:
            holder.join(10)
