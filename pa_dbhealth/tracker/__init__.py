"""Every database connection this process opens: who holds it, since when, and from where.

Process-wide and thread-safe. Openings are seen through Django's ``connection_created``
signal (every vendor); closings are noticed lazily, by looking at the connection wrapper
whenever the figures are asked for or another connection opens (a wrapper that is gone,
has no connection or has reconnected since counts as closed), so closing costs nothing.
Last use is kept by an execute wrapper, so idle time is measured, not guessed.

A connection held by a thread that is neither a request thread (one that has seen
``request_started``), the main thread, nor a thread that uses the hygiene tools, or one
opened while a module was being imported, is logged once as a probable leak.

The open connections are published to the registry of holders (:mod:`.publishing`).

The parts: :mod:`.signals` (the receivers), :mod:`.records` (one connection),
:mod:`.ledger` (all of them, and the counts), :mod:`.threads` (which thread holds which),
:mod:`.usage` (last use, open cursors), :mod:`.publishing` (the registry of holders).
"""

from pa_dbhealth.tracker.ledger import (
    anything_open,
    figures,
    note_connect_giveup,
    note_connect_retry,
    note_handoff,
    note_probe_refused,
    open_connections,
)
from pa_dbhealth.tracker.publishing import kept_entry, publish
from pa_dbhealth.tracker.records import PUBLISH_AFTER, TrackedConnection
from pa_dbhealth.tracker.signals import (
    connection_created,
    install,
    request_finished,
    request_started,
)
from pa_dbhealth.tracker.threads import AUTORELOAD_THREAD, mark_holder, thread_connections
from pa_dbhealth.tracker.usage import in_use, last_used

__all__ = [
    "AUTORELOAD_THREAD",
    "PUBLISH_AFTER",
    "TrackedConnection",
    "anything_open",
    "connection_created",
    "figures",
    "in_use",
    "install",
    "kept_entry",
    "last_used",
    "mark_holder",
    "note_connect_giveup",
    "note_connect_retry",
    "note_handoff",
    "note_probe_refused",
    "open_connections",
    "publish",
    "request_finished",
    "request_started",
    "thread_connections",
]
