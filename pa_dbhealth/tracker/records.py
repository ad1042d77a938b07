"""One open connection as the tracker saw it open (:class:`Record`), and as it is shown to
callers (:class:`TrackedConnection`) and to the registry of holders."""

from __future__ import annotations

import sys
import threading
import time
import weakref
from dataclasses import asdict, dataclass
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper

from pa_dbhealth import holders
from pa_dbhealth.core import registry
from pa_dbhealth.core.look import in_look
from pa_dbhealth.core.origins import Origins
from pa_dbhealth.core.server_id import server_id
from pa_dbhealth.tracker.threads import holder_expected, this_thread
from pa_dbhealth.tracker.usage import last_used

OPENING = "_pa_dbhealth_token"  # set on the wrapper at each connect: tells reconnects apart
PUBLISH_AFTER = registry.PUBLISH_AFTER  # seconds a request's connection is held unpublished

# The code that asked for a connection is the first frame outside these.
origins = Origins("django", "asgiref")


@dataclass(frozen=True)
class TrackedConnection:
    """One open connection of this process, as the tracker saw it open."""

    alias: str
    vendor: str
    vendor_id: int | None  # the server's id for it (MySQL thread id), when known without a query
    thread_name: str
    thread_id: int
    thread_alive: bool
    opened_at: float  # time.time()
    last_used: float | None  # time.time() of the end of its last query
    caller: str | None  # "file:line in function": the first frame outside Django and pa_dbhealth
    origin: str | None  # the formatted opening stack, when TRACK_ORIGINS is on
    at_import: bool  # opened while a module was being imported
    probable_leak: bool

    @property
    def idle_seconds(self) -> float:
        return max(0.0, time.time() - (self.last_used or self.opened_at))

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["idle_seconds"] = round(self.idle_seconds, 3)
        return data

    def describe(self) -> str:
        """One line for a log: alias, server id, thread, age, idle time, where it was opened."""
        age = time.time() - self.opened_at
        server_id = f" id {self.vendor_id}" if self.vendor_id is not None else ""
        thread = self.thread_name + ("" if self.thread_alive else " (ended)")
        where = f", opened at {self.caller}" if self.caller else ""
        flags = " [probable leak]" if self.probable_leak else ""
        return (
            f"{self.alias!r}{server_id} held by thread {thread!r} for {age:.0f} s, "
            f"idle {self.idle_seconds:.0f} s{where}{flags}"
        )


class Record:
    """What the tracker keeps about one opening of a connection (``token`` tells it from the
    wrapper's later reconnects)."""

    __slots__ = (
        "alias",
        "at_import",
        "caller",
        "leak",
        "opened_at",
        "origin",
        "started",
        "thread",
        "thread_id",
        "thread_name",
        "token",
        "transient",
        "vendor",
        "vendor_id",
        "wrapper",
    )

    def __init__(self, connection: BaseDatabaseWrapper, token: int) -> None:
        thread = threading.current_thread()
        self.token = token
        self.alias = str(connection.alias)
        self.vendor = str(connection.vendor)
        self.vendor_id = _vendor_id(connection)
        self.wrapper = weakref.ref(connection)
        self.thread = weakref.ref(thread)
        self.thread_name = thread.name
        self.thread_id = thread.ident or 0
        self.opened_at = time.time()
        self.started = time.monotonic()
        self.caller, self.at_import = origins.where(sys._getframe(2))
        self.origin: str | None = None
        self.leak = False
        # A request's or a look's: expected to close soon, so not published at once.
        self.transient = this_thread.in_request or in_look()

    def is_open(self) -> bool:
        wrapper = self.wrapper()
        return (
            wrapper is not None
            and wrapper.connection is not None
            and not wrapper.closed_in_transaction
            and getattr(wrapper, OPENING, None) == self.token
        )

    def thread_alive(self) -> bool:
        thread = self.thread()
        return thread is not None and thread.is_alive()

    def holder_expected(self) -> bool:
        return holder_expected(self.thread())

    def publishable(self, now: float) -> bool:
        return not self.transient or now - self.started >= PUBLISH_AFTER

    def leak_found(self) -> registry.Leak:
        """Why it is a probable leak, and the fix, in the registry's words."""
        return holders.leak(
            at_import=self.at_import, thread=self.thread_name, thread_alive=self.thread_alive()
        )

    def held(self, wrapper: BaseDatabaseWrapper) -> registry.HeldConnection:
        """This connection as the registry of holders shows it."""
        server, account = holders.server_of(wrapper.settings_dict, self.vendor)
        return registry.HeldConnection(
            server=server,
            account=account,
            vendor=self.vendor,
            id=self.vendor_id,
            name=self.alias,
            thread=self.thread_name,
            opened_at=self.opened_at,
            last_used=_wall_clock(last_used(wrapper)),
            caller=self.caller,
            stack=self.origin,
            leak=self.leak_found() if self.leak else None,
        )

    def snapshot(self) -> TrackedConnection:
        wrapper = self.wrapper()
        return TrackedConnection(
            alias=self.alias,
            vendor=self.vendor,
            vendor_id=self.vendor_id,
            thread_name=self.thread_name,
            thread_id=self.thread_id,
            thread_alive=self.thread_alive(),
            opened_at=self.opened_at,
            last_used=_wall_clock(last_used(wrapper) if wrapper is not None else None),
            caller=self.caller,
            origin=self.origin,
            at_import=self.at_import,
            probable_leak=self.leak,
        )


def _wall_clock(monotonic: float | None) -> float | None:
    """A ``time.monotonic()`` instant as ``time.time()``."""
    return None if monotonic is None else time.time() - (time.monotonic() - monotonic)


def _vendor_id(connection: BaseDatabaseWrapper) -> int | None:
    return server_id(connection.connection)
