"""ASGI requests hand their connections back: closed when the request ends, or reclaimed
once their thread is gone.

Under ASGI, Django runs each request's synchronous code (sync views and middleware, the
ORM, signal receivers) in a thread made for that request (asgiref's
``ThreadSensitiveContext``), and that thread ends with the request. A connection kept for
reuse (``CONN_MAX_AGE`` > 0) stays behind in a thread nobody will run again: it holds one
of the account's connections until the garbage collector happens to free it (Django ticket
#33497, "100 requests -> 40 leaked connections"), and on a capped account the next
requests get 1226.

So under ASGI the middleware makes the request's thread end the request with no connection
open, whatever ``CONN_MAX_AGE`` says: it closes them as soon as the response is ready (only
when the request opened one: a request that did not touch the database costs nothing), and
again when Django signals the end of the request (after a streaming body, which may query).
A connection inside an atomic block, or with a cursor still open on it, is never closed.
Every connection opened while a request runs is leased to it; one whose thread ended
without handing it back (a streaming body that raised: Django then never signals the end)
is closed from another thread by the next request that ends or by a connect the cap
refuses, as Rails' connection reaper reclaims connections leased to dead threads.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from contextvars import ContextVar
from typing import Any

from django.core.handlers.asgi import ASGIHandler
from django.db import DatabaseError
from django.db.backends.base.base import BaseDatabaseWrapper
from django.http import StreamingHttpResponse
from django.http.response import HttpResponseBase

from pa_dbhealth import tracker

logger = logging.getLogger(__name__)


class Lease:
    """One ASGI request: whether a connection was opened while it ran, and whether it has
    ended (its view returned, or its streaming body was sent)."""

    __slots__ = ("ended", "opened")

    def __init__(self) -> None:
        self.opened = False
        self.ended = False


_MARK = "_pa_dbhealth_lease"  # on a wrapper: the _Leased of the connection it holds, or None


class _Leased:
    """A connection opened while a request ran, and the thread that holds it."""

    __slots__ = ("thread", "wrapper")

    def __init__(self, wrapper: BaseDatabaseWrapper) -> None:
        self.wrapper = weakref.ref(wrapper)
        self.thread = weakref.ref(threading.current_thread())

    def holder(self) -> BaseDatabaseWrapper | None:
        """The wrapper, while it still holds the connection it was leased with (not closed
        since, nor opened anew: each opening marks the wrapper afresh)."""
        wrapper = self.wrapper()
        if wrapper is None or wrapper.connection is None or getattr(wrapper, _MARK) is not self:
            return None
        return wrapper

    def orphaned(self) -> bool:
        thread = self.thread()
        return thread is None or not thread.is_alive()


_current: ContextVar[Lease | None] = ContextVar("pa_dbhealth_lease", default=None)
_lock = threading.Lock()
_leased: dict[int, _Leased] = {}  # id(wrapper) -> its lease


def begin() -> Lease:
    """Lease every connection opened from here on in this context to a new request, until
    the lease ends. (A context variable set in a coroutine can outlive the request: asgiref
    hands it back to a synchronous caller of ``async_to_sync``, as in Django's test client.
    An ended lease takes nothing.)"""
    lease = Lease()
    _current.set(lease)
    return lease


def until_streamed(response: HttpResponseBase, lease: Lease) -> None:
    """Keep ``lease`` open while the streaming ``response``'s body is sent (it may query),
    and end it then, as GZipMiddleware wraps a body: sync and async bodies alike."""

    def body(content: Iterable[bytes]) -> Iterator[bytes]:
        try:
            yield from content
        finally:
            lease.ended = True

    async def abody(content: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        try:
            async for part in content:
                yield part
        finally:
            lease.ended = True

    assert isinstance(response, StreamingHttpResponse)  # FileResponse is one too
    content = response.streaming_content
    if isinstance(content, AsyncIterable):
        response.streaming_content = abody(content)
    else:
        response.streaming_content = body(content)


def connection_created(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    """Receiver of ``connection_created``: lease the connection to the request running, if
    any (the context is carried into the request's threads by ``sync_to_async``)."""
    lease = _current.get()
    if lease is None or lease.ended:
        if getattr(connection, _MARK, None) is not None:
            setattr(connection, _MARK, None)  # opened anew outside any request
        return
    lease.opened = True
    leased = _Leased(connection)
    setattr(connection, _MARK, leased)
    with _lock:
        _leased[id(connection)] = leased


def leased_count() -> int:
    """How many leased connections are still open (requests in flight hold them)."""
    with _lock:
        return sum(1 for leased in _leased.values() if leased.holder() is not None)


def release() -> list[str]:
    """Close the calling thread's connections and reclaim leased connections whose thread
    has ended; returns the aliases closed. Never one inside an atomic block, never one with
    a cursor open on it."""
    closed = [
        str(connection.alias)
        for connection in tracker.thread_connections()
        if _close(connection, own_thread=True)
    ]
    return closed + reclaim_orphans()


def reclaim_orphans() -> list[str]:
    """Close the leased connections whose thread has ended (from this thread: nothing can
    use them any more); returns their aliases."""
    if not _leased:
        return []
    with _lock:
        orphans = []
        for key, leased in list(_leased.items()):
            wrapper = leased.holder()
            if wrapper is None:
                del _leased[key]  # closed (or opened anew) since: no longer this lease
            elif leased.orphaned():
                orphans.append(wrapper)
    return [str(wrapper.alias) for wrapper in orphans if _close(wrapper, own_thread=False)]


def _close(connection: BaseDatabaseWrapper, *, own_thread: bool) -> bool:
    alias = connection.alias
    if connection.connection is None:
        return False  # closed meanwhile (two requests reclaiming the same orphan)
    if tracker.in_use(connection):
        return False  # a cursor is open on it: a body still streaming, an unread result
    if connection.in_atomic_block:
        if getattr(connection, _MARK, None) is None:
            return False  # opened outside requests (a test's transaction): not its business
        logger.warning(
            "Connection %r is still inside an atomic block at the end of an ASGI request: "
            "left open (closing it would roll the transaction back). End every "
            "transaction.atomic() inside the request.",
            alias,
        )
        return False
    if not own_thread:
        logger.warning(
            "Connection %r was left open by a request thread that has ended: closed.", alias
        )
        connection.inc_thread_sharing()  # its thread is gone: nobody else can use it
    try:
        connection.close()
    except DatabaseError as exc:  # closing a dead connection may complain; it is closed
        logger.debug("Closing connection %r raised %s", alias, exc)
    finally:
        if not own_thread:
            connection.dec_thread_sharing()
    with _lock:
        _leased.pop(id(connection), None)
    return True


def request_finished(sender: Any, **kwargs: Any) -> None:
    """Receiver of ``request_finished`` (connected by the middleware under ASGI): Django's
    ASGI handler sends it in the request's thread once the response is sent, streaming
    bodies included."""
    under_asgi = isinstance(sender, type) and issubclass(sender, ASGIHandler)
    if under_asgi and (tracker.thread_connections() or _leased):
        release()


def watch_request_ends() -> None:
    """Connect :func:`request_finished` (the middleware calls this when it runs under ASGI;
    calling it again is harmless)."""
    from django.core.signals import request_finished as request_finished_signal

    request_finished_signal.connect(request_finished, dispatch_uid="pa_dbhealth.leases.finished")


def install() -> None:
    """Connect the lease receiver (``AppConfig.ready`` calls this; calling it again is
    harmless)."""
    from django.db.backends.signals import connection_created as created_signal

    created_signal.connect(connection_created, dispatch_uid="pa_dbhealth.leases.created")
