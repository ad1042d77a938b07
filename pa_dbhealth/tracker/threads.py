"""Which threads hold connections: each thread's own wrappers, whether it is in a request,
and the threads expected to hold connections (so theirs are no leak)."""

from __future__ import annotations

import threading
import weakref

from django.db.backends.base.base import BaseDatabaseWrapper

# Under the autoreloader (runserver) Django runs the command in a thread of this name.
AUTORELOAD_THREAD = "django-main-thread"


class ThreadState(threading.local):
    """The calling thread's part. Class defaults, so that a thread that never connected
    reads them without an AttributeError raised and caught."""

    # The wrappers that connected in this thread and have not closed since (what
    # connections.all() would give, minus those not open, and much cheaper to ask than
    # Django's asgiref-based handler): empty or None (before the first connect) when the
    # thread holds no connection, which a request tells with one attribute read.
    wrappers: dict[int, weakref.ref[BaseDatabaseWrapper]] | None = None
    in_request = False  # between request_started and request_finished
    holder = False  # in the set of expected holders (read without a WeakSet lookup)


this_thread = ThreadState()
# Threads expected to hold connections: they served a request or use the hygiene tools.
_holders: weakref.WeakSet[threading.Thread] = weakref.WeakSet()


def mark_holder(thread: threading.Thread | None = None) -> None:
    """Say that this thread (request, command, or a worker using the hygiene tools) is
    expected to hold connections, so its connections are not reported as leaks."""
    if thread is None or thread is threading.current_thread():
        if this_thread.holder:
            return  # each request says it again: a thread-local read, no WeakSet lookup
        this_thread.holder = True
        thread = threading.current_thread()
    _holders.add(thread)


def holder_expected(thread: threading.Thread | None) -> bool:
    """Whether ``thread`` (alive) is expected to hold connections: the main thread,
    runserver's command thread, or one marked by :func:`mark_holder`."""
    if thread is None or not thread.is_alive():
        return False
    return (
        thread is threading.main_thread() or thread.name == AUTORELOAD_THREAD or thread in _holders
    )


def add_wrapper(connection: BaseDatabaseWrapper) -> None:
    """Remember that ``connection`` connected in the calling thread."""
    if this_thread.wrappers is None:
        this_thread.wrappers = {}
    this_thread.wrappers[id(connection)] = weakref.ref(connection)


def forget_wrapper(connection: BaseDatabaseWrapper) -> None:
    """``connection`` has closed: the calling thread no longer holds it (a wrapper closed
    from another thread, or still open, stays where it is)."""
    mine = this_thread.wrappers
    if mine and connection.connection is None:
        ref = mine.get(id(connection))
        if ref is not None and ref() is connection:
            del mine[id(connection)]


def thread_connections() -> list[BaseDatabaseWrapper]:
    """The calling thread's connection wrappers that hold an open connection now."""
    mine = this_thread.wrappers
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
