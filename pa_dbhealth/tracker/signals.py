"""The tracker's receivers of Django's signals: a connection opens, a request starts or
finishes."""

from __future__ import annotations

import sys
import time
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper

from pa_dbhealth.tracker import ledger, publishing, threads, usage
from pa_dbhealth.tracker.records import OPENING, Record, origins

_WRAPPED = "_pa_dbhealth_wrapped"  # the wrapper's methods are instrumented

_listening = False  # request_finished is connected


def connection_created(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    """Receiver of Django's ``connection_created``: record the opening."""
    usage.note_use(connection)
    if not getattr(connection, _WRAPPED, False):
        # First in the list, so a ``with connection.execute_wrapper(...)`` around the
        # opening still pops its own wrapper, not this one.
        connection.execute_wrappers.insert(0, publishing.touch)
        usage.count_cursors(connection)
        publishing.watch_close(connection)
        setattr(connection, _WRAPPED, True)
    token = ledger.next_token()
    setattr(connection, OPENING, token)
    threads.add_wrapper(connection)
    record = Record(connection, token)
    if _track_origins():
        record.origin = origins.stack(sys._getframe(1))
    ledger.add(record)
    if threads.this_thread.in_request and connection.settings_dict.get("CONN_MAX_AGE") != 0:
        _listen_for_request_ends()  # a request's connection that may outlive it
    if not record.transient or publishing.due(time.monotonic()):
        publishing.publish()
    else:
        ledger.sweep()


def _track_origins() -> bool:
    from pa_dbhealth.conf import track_origins

    try:
        return track_origins()
    except Exception:  # settings not configured: a bare script
        return False


def request_started(sender: Any, **kwargs: Any) -> None:
    """Receiver of Django's ``request_started``: the thread serves requests."""
    state = threads.this_thread
    state.in_request = True
    if not state.holder:
        threads.mark_holder()


_receiver_needed = False  # an ASGI handler in this process needs request_started's receiver


def let_the_middleware_mark_requests() -> bool:
    """The WSGI middleware, first in MIDDLEWARE, marks each request's thread itself (what
    :func:`request_started` does): the receiver is disconnected, since Django's dispatcher
    costs a bare request about 2 % in instructions. Not under ASGI, where the middleware
    runs in the event loop and the request's sync code in a thread of its own. True when
    the middleware is to mark."""
    from django.core.signals import request_started as request_started_signal

    if _receiver_needed:
        return False
    request_started_signal.disconnect(dispatch_uid="pa_dbhealth.tracker.request")
    return True


def keep_the_request_receiver() -> None:
    """An ASGI handler is in this process: the receiver stays (is connected again)."""
    global _receiver_needed
    _receiver_needed = True
    install()


def request_finished(sender: Any, **kwargs: Any) -> None:
    """Receiver of Django's ``request_finished`` (after Django's own, which closes what
    ``CONN_MAX_AGE`` says): publish the thread's connections that outlived the request, and
    refresh the registry when it is due. Nothing to do after a request without database."""
    threads.this_thread.in_request = False
    mine = threads.this_thread.wrappers
    if not mine:
        return
    outlived = published = False
    for ref in mine.values():
        wrapper = ref()
        if wrapper is None or wrapper.connection is None:
            continue
        published = published or publishing.is_published(wrapper)
        record = ledger.records.get(getattr(wrapper, OPENING, 0))
        if record is not None and record.transient:
            record.transient = False
            outlived = True
    if outlived or (published and publishing.due(time.monotonic())):
        publishing.publish()


def install() -> None:
    """Connect the receivers (``AppConfig.ready`` calls this; calling it again is harmless)."""
    from django.core.signals import request_started as request_started_signal
    from django.db.backends.signals import connection_created as created_signal

    created_signal.connect(connection_created, dispatch_uid="pa_dbhealth.tracker.created")
    request_started_signal.connect(request_started, dispatch_uid="pa_dbhealth.tracker.request")


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
