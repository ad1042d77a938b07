"""Every database connection this process opens: who holds it, since when, and from where.

Process-wide and thread-safe. Openings are seen through Django's ``connection_created``
signal (every vendor); closings are noticed lazily, by looking at the connection wrapper
whenever the figures are asked for or another connection opens (a wrapper that is gone,
has no connection or has reconnected since counts as closed), so closing costs nothing.
Last use is kept by an execute wrapper, so idle time is measured, not guessed.

A connection held by a thread that is neither a request thread (one that has seen
``request_started``), the main thread, nor a thread that uses the hygiene tools, or one
opened while a module was being imported, is logged once as a probable leak.

The open connections are published to the registry of holders (:mod:`pa_dbhealth.holders`),
so other processes can tell who holds them without a database connection; a request pays
nothing for it. A connection opened and closed within one request (or one look) is never
written; it is published when it outlives its request (``request_finished`` finds it open;
its receiver is connected only once a request opens a persistent connection),
when it was opened outside a request (a command, a thread, a task, an import), or once it has
been held for :data:`PUBLISH_AFTER` seconds (noticed at its next query, or when the process
opens another connection). A published connection's closing rewrites the file; a change of
last use alone is written at most every few seconds.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Callable
from dataclasses import asdict, dataclass
from types import FrameType
from typing import Any

import asgiref
import django
from django.db.backends.base.base import BaseDatabaseWrapper

from pa_dbhealth import holders
from pa_dbhealth.core import registry, vendors
from pa_dbhealth.core.look import in_look

logger = logging.getLogger(__name__)

_OPENING = "_pa_dbhealth_token"  # set on the wrapper at each connect: tells reconnects apart
_USED = "_pa_dbhealth_used"  # time.monotonic() of the end of the wrapper's last query
_WRAPPED = "_pa_dbhealth_wrapped"  # the execute wrapper is installed
_CURSORS = "_pa_dbhealth_cursors"  # the driver cursors the wrapper made (a WeakSet)
_PUBLISHED = "_pa_dbhealth_published"  # its connection is in the registry of holders

PUBLISH_AFTER = registry.PUBLISH_AFTER  # seconds a request's connection is held unpublished

_lock = threading.Lock()
_counts = {
    "opened": 0,
    "closed": 0,
    "leaks": 0,
    "connect_retries": 0,
    "connect_giveups": 0,
    "connect_handoffs": 0,
    "probes_refused": 0,
}
_next_token = 0
_records: dict[int, _Record] = {}
_publish_lock = threading.Lock()
_refresh_at = 0.0  # time.monotonic() after which the next query refreshes the registry


# Per thread: the wrappers that connected in it (what connections.all() would give, minus
# those never connected, and much cheaper to ask than Django's asgiref-based handler).
class _ThreadState(threading.local):
    wrappers: dict[int, weakref.ref[BaseDatabaseWrapper]] | None = None  # a class default: no
    # AttributeError raised and caught on each request of a thread that never connected
    in_request = False  # between request_started and request_finished


_local = _ThreadState()
# Under the autoreloader (runserver) Django runs the command in a thread of this name.
AUTORELOAD_THREAD = "django-main-thread"
# Threads expected to hold connections: they served a request or use the hygiene tools.
_holders: weakref.WeakSet[threading.Thread] = weakref.WeakSet()


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


class _Record:
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
        self.caller, self.at_import = _where(sys._getframe(2))
        self.origin: str | None = None
        self.leak = False
        # A request's or a look's: expected to close soon, so not published at once.
        self.transient = _local.in_request or in_look()

    def is_open(self) -> bool:
        wrapper = self.wrapper()
        return (
            wrapper is not None
            and wrapper.connection is not None
            and not wrapper.closed_in_transaction
            and getattr(wrapper, _OPENING, None) == self.token
        )

    def holder_expected(self) -> bool:
        thread = self.thread()
        if thread is None or not thread.is_alive():
            return False
        return (
            thread is threading.main_thread()
            or thread.name == AUTORELOAD_THREAD
            or thread in _holders
        )

    def publishable(self, now: float) -> bool:
        return not self.transient or now - self.started >= PUBLISH_AFTER

    def held(self, wrapper: BaseDatabaseWrapper) -> registry.HeldConnection:
        """This connection as the registry of holders shows it."""
        server, account = holders.server_of(wrapper.settings_dict, self.vendor)
        used = last_used(wrapper)
        thread = self.thread()
        leak = None
        if self.leak:
            alive = thread is not None and thread.is_alive()
            leak = holders.leak(
                at_import=self.at_import, thread=self.thread_name, thread_alive=alive
            )
        return registry.HeldConnection(
            server=server,
            account=account,
            vendor=self.vendor,
            id=self.vendor_id,
            name=self.alias,
            thread=self.thread_name,
            opened_at=self.opened_at,
            last_used=None if used is None else time.time() - (time.monotonic() - used),
            caller=self.caller,
            stack=self.origin,
            leak=leak,
        )

    def snapshot(self) -> TrackedConnection:
        wrapper = self.wrapper()
        used = last_used(wrapper) if wrapper is not None else None
        thread = self.thread()
        return TrackedConnection(
            alias=self.alias,
            vendor=self.vendor,
            vendor_id=self.vendor_id,
            thread_name=self.thread_name,
            thread_id=self.thread_id,
            thread_alive=thread is not None and thread.is_alive(),
            opened_at=self.opened_at,
            last_used=None if used is None else time.time() - (time.monotonic() - used),
            caller=self.caller,
            origin=self.origin,
            at_import=self.at_import,
            probable_leak=self.leak,
        )


def _vendor_id(connection: BaseDatabaseWrapper) -> int | None:
    thread_id: Callable[[], int] | None = getattr(connection.connection, "thread_id", None)
    if thread_id is None:  # psycopg has info.backend_pid; SQLite has nothing
        info = getattr(connection.connection, "info", None)
        pid = getattr(info, "backend_pid", None)
        return int(pid) if isinstance(pid, int) else None
    try:
        return int(thread_id())
    except Exception:  # a driver that cannot tell: the id is a nicety
        return None


# Frames that are machinery, not the code that asked for a connection.
_SKIPPED_DIRS = tuple(
    os.path.dirname(os.path.abspath(path)) + os.sep
    for path in (django.__file__, asgiref.__file__, __file__)
    if path
)
_SKIPPED_FILES = frozenset(
    os.path.abspath(path) for path in (threading.__file__, contextlib.__file__) if path
)


def _skipped(filename: str) -> bool:
    return (
        filename.startswith(_SKIPPED_DIRS) or filename in _SKIPPED_FILES or filename.startswith("<")
    )


def _where(frame: FrameType | None) -> tuple[str | None, bool]:
    """The first frame outside Django, asgiref and pa_dbhealth, and whether an import is running."""
    caller = None
    at_import = False
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename.startswith("<frozen importlib"):
            at_import = True
            break
        if caller is None and not _skipped(filename):
            caller = f"{filename}:{frame.f_lineno} in {frame.f_code.co_name}"
        frame = frame.f_back
    return caller, at_import


def _origin(frame: FrameType | None) -> str:
    stack = traceback.extract_stack(frame)
    while len(stack) > 1 and _skipped(stack[-1].filename):
        stack.pop()  # drop Django's connect machinery: end at the code that asked
    return "".join(traceback.format_list(stack[-20:])).rstrip()


def _touch(execute: Callable[..., Any], sql: Any, params: Any, many: bool, context: Any) -> Any:
    try:
        return execute(sql, params, many, context)
    finally:
        now = time.monotonic()
        setattr(context["connection"], _USED, now)
        if now >= _refresh_at:
            publish()


def _counting_cursors(connection: BaseDatabaseWrapper) -> None:
    """Keep a weak set of the driver cursors ``connection`` makes, to tell an iterator
    between two chunks (a cursor still open) from an idle connection."""
    made: weakref.WeakSet[Any] = weakref.WeakSet()
    create_cursor = connection.create_cursor

    def counted(name: Any = None) -> Any:
        cursor = create_cursor(name)
        with contextlib.suppress(TypeError):  # a cursor type without weak references
            made.add(cursor)
        return cursor

    setattr(connection, _CURSORS, made)
    connection.create_cursor = counted  # type: ignore[method-assign]


def _watching_close(connection: BaseDatabaseWrapper) -> None:
    """Republish when a published connection closes, so its entry leaves the registry."""
    close = connection.close

    def closing() -> None:
        try:
            close()
        finally:
            if getattr(connection, _PUBLISHED, False):
                publish()

    connection.close = closing  # type: ignore[method-assign]


def _cursor_open(cursor: Any) -> bool:
    closed = getattr(cursor, "closed", None)  # psycopg
    if isinstance(closed, bool):
        return not closed
    return getattr(cursor, "connection", None) is not None  # mysqlclient, PyMySQL


def in_use(connection: BaseDatabaseWrapper) -> bool:
    """Whether a cursor is still open on the connection (a result not read to its end, such
    as ``QuerySet.iterator()`` between chunks): then it must not be closed."""
    made = getattr(connection, _CURSORS, None)
    return made is not None and any(_cursor_open(cursor) for cursor in list(made))


def last_used(connection: BaseDatabaseWrapper) -> float | None:
    """``time.monotonic()`` of the end of the connection's last query (or of its opening)."""
    value = getattr(connection, _USED, None)
    return value if isinstance(value, float) else None


def thread_connections() -> list[BaseDatabaseWrapper]:
    """The calling thread's connection wrappers that hold an open connection now."""
    mine = _local.wrappers
    if not mine:
        return []
    found = []
    for key, ref in list(mine.items()):
        wrapper = ref()
        if wrapper is None:
            del mine[key]
        elif wrapper.connection is not None:
            found.append(wrapper)
    return found


def connection_created(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    """Receiver of Django's ``connection_created``: record the opening."""
    global _next_token
    setattr(connection, _USED, time.monotonic())
    if not getattr(connection, _WRAPPED, False):
        # First in the list, so a ``with connection.execute_wrapper(...)`` around the
        # opening still pops its own wrapper, not this one.
        connection.execute_wrappers.insert(0, _touch)
        _counting_cursors(connection)
        _watching_close(connection)
        setattr(connection, _WRAPPED, True)
    with _lock:
        _next_token += 1
        token = _next_token
    setattr(connection, _OPENING, token)
    if _local.wrappers is None:
        _local.wrappers = {}
    _local.wrappers[id(connection)] = weakref.ref(connection)
    record = _Record(connection, token)
    if _track_origins():
        record.origin = _origin(sys._getframe(1))
    with _lock:
        _counts["opened"] += 1
        _records[token] = record
    if _local.in_request and connection.settings_dict.get("CONN_MAX_AGE") != 0:
        _listen_for_request_ends()  # a request's connection that may outlive it
    if not record.transient or time.monotonic() >= _refresh_at:
        publish()
    else:
        _sweep()


def _track_origins() -> bool:
    from pa_dbhealth.conf import track_origins

    try:
        return track_origins()
    except Exception:  # settings not configured: a bare script
        return False


def _sweep() -> list[_Record]:
    """Drop closed connections, flag new probable leaks; returns the open records."""
    global _refresh_at
    new_leaks = []
    with _lock:
        for token, record in list(_records.items()):
            if not record.is_open():
                del _records[token]
                _counts["closed"] += 1
            elif not record.leak and (record.at_import or not record.holder_expected()):
                record.leak = True
                _counts["leaks"] += 1
                new_leaks.append(record)
        still_open = list(_records.values())
    if new_leaks:
        _refresh_at = 0.0  # the registry shows probable leaks: at the next occasion
    for record in new_leaks:
        _report_leak(record)
    return still_open


def _report_leak(record: _Record) -> None:
    thread = record.thread()
    leak = holders.leak(
        at_import=record.at_import,
        thread=record.thread_name,
        thread_alive=thread is not None and thread.is_alive(),
    )
    origin = (
        f"Opened by:\n{record.origin}"
        if record.origin
        else "Set PA_DBHEALTH['TRACK_ORIGINS'] = True to record the whole opening stack."
    )
    logger.warning(
        "Probable connection leak: %s; %s. Fix: %s.\n%s",
        record.snapshot().describe(),
        leak.why,
        leak.fix,
        origin,
    )


def publish() -> None:
    """Write this process's open connections to the registry of holders: those opened
    outside a request, those that outlived their request and those held past
    :data:`PUBLISH_AFTER`. The registry writes only what changed, and never raises."""
    global _refresh_at
    with _publish_lock:
        still_open = _sweep()
        now = time.monotonic()
        _refresh_at = now + registry.REFRESH_EVERY
        entries = []
        for record in still_open:
            wrapper = record.wrapper()
            if wrapper is None:
                continue
            shown = record.publishable(now) and vendors.is_applicable(record.vendor)
            setattr(wrapper, _PUBLISHED, shown)
            if shown:
                entries.append(record.held(wrapper))
        registry.publisher.publish(holders.directory(), entries, source="django")


def mark_holder(thread: threading.Thread | None = None) -> None:
    """Say that this thread (request, command, or a worker using the hygiene tools) is
    expected to hold connections, so its connections are not reported as leaks."""
    thread = thread or threading.current_thread()
    if thread not in _holders:
        _holders.add(thread)


def request_started(sender: Any, **kwargs: Any) -> None:
    """Receiver of Django's ``request_started``: the thread serves requests."""
    mark_holder()
    _local.in_request = True


def request_finished(sender: Any, **kwargs: Any) -> None:
    """Receiver of Django's ``request_finished`` (after Django's own, which closes what
    ``CONN_MAX_AGE`` says): publish the thread's connections that outlived the request, and
    refresh the registry when it is due. Nothing to do after a request without database."""
    _local.in_request = False
    mine = _local.wrappers
    if not mine:
        return
    outlived = published = False
    for ref in mine.values():
        wrapper = ref()
        if wrapper is None or wrapper.connection is None:
            continue
        published = published or getattr(wrapper, _PUBLISHED, False)
        record = _records.get(getattr(wrapper, _OPENING, 0))
        if record is not None and record.transient:
            record.transient = False
            outlived = True
    if outlived or (published and time.monotonic() >= _refresh_at):
        publish()


def open_connections() -> list[TrackedConnection]:
    """This process's open connections, in all threads, oldest first."""
    return [record.snapshot() for record in _sweep()]


def figures() -> dict[str, int]:
    """Process-wide counts since start: opened, closed, open now, probable leaks reported,
    connects retried and given up by the retrying backend, connections it handed from a
    thread done with one to a thread waiting for the cap (each also counts as a close and an
    opening: the wrapper that receives it sees it open), and single-attempt looks refused by
    the cap (not give-ups: nobody waited)."""
    still_open = _sweep()
    with _lock:
        counts = dict(_counts)
    return {
        "opened": counts["opened"],
        "closed": counts["closed"],
        "open": len(still_open),
        "leaks": counts["leaks"],
        "connect_retries": counts["connect_retries"],
        "connect_giveups": counts["connect_giveups"],
        "connect_handoffs": counts["connect_handoffs"],
        "probes_refused": counts["probes_refused"],
    }


def note_connect_retry(alias: str) -> None:
    """A connect refused by the cap is being retried (called by the retrying backend)."""
    with _lock:
        _counts["connect_retries"] += 1


def note_connect_giveup(alias: str) -> None:
    """The retrying backend gave up on a connect refused by the cap."""
    with _lock:
        _counts["connect_giveups"] += 1


def note_probe_refused(alias: str) -> None:
    """A look's single connect attempt (health view, commands, cap report) was refused by the
    cap: not a give-up, nothing waited."""
    with _lock:
        _counts["probes_refused"] += 1


def note_handoff(alias: str) -> None:
    """The retrying backend handed a connection to a thread waiting for the cap."""
    with _lock:
        _counts["connect_handoffs"] += 1


def install() -> None:
    """Connect the receivers (``AppConfig.ready`` calls this; calling it again is harmless)."""
    from django.core.signals import request_started as request_started_signal
    from django.db.backends.signals import connection_created as created_signal

    created_signal.connect(connection_created, dispatch_uid="pa_dbhealth.tracker.created")
    request_started_signal.connect(request_started, dispatch_uid="pa_dbhealth.tracker.request")


_listening = False  # request_finished is connected


def _listen_for_request_ends() -> None:
    """Connect the ``request_finished`` receiver, once: at the first connection a request
    opens that may outlive it (``CONN_MAX_AGE`` is not 0). Until then nothing can outlive a
    request (Django closes the request's connections at its end), so a site with
    ``CONN_MAX_AGE = 0``, and every request without database, pays no receiver at all. The
    price: a thread that served requests keeps its request flag, so a connection it opens
    outside a request is taken for a request's (published once held PUBLISH_AFTER, not at
    once); threads that serve requests seldom do that."""
    global _listening
    if _listening:
        return
    from django.core.signals import request_finished as request_finished_signal

    # After django.db's close_old_connections, connected when django.db was imported.
    request_finished_signal.connect(request_finished, dispatch_uid="pa_dbhealth.tracker.finished")
    _listening = True
