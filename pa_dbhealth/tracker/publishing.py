"""This process's open connections in the registry of holders (:mod:`pa_dbhealth.holders`),
so other processes can tell who holds them without a database connection.

A request pays nothing for it. A connection opened and closed within one request (or one
look) is never written; it is published when it outlives its request, when it was opened
outside a request (a command, a thread, a task, an import), or once it has been held for
``PUBLISH_AFTER`` seconds (noticed at its next query, or when the process opens another
connection). A published connection's closing rewrites the file; a change of last use
alone is written at most every few seconds.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper

from pa_dbhealth import holders
from pa_dbhealth.core import pins, registry, vendors
from pa_dbhealth.tracker import ledger, pinning
from pa_dbhealth.tracker.records import OPENING
from pa_dbhealth.tracker.threads import forget_wrapper
from pa_dbhealth.tracker.usage import note_use

PUBLISHED = "_pa_dbhealth_published"  # on a wrapper: its connection is in the registry

_publish_lock = threading.Lock()
_refresh_at = 0.0  # time.monotonic() after which the next query refreshes the registry


def due(now: float) -> bool:
    """Whether the registry is due a refresh (last uses, connections held past
    ``PUBLISH_AFTER``, new probable leaks); ``now`` is ``time.monotonic()``."""
    return now >= _refresh_at or ledger.leaks_unpublished


def publish() -> None:
    """Write this process's open connections to the registry of holders: those opened
    outside a request, those that outlived their request and those held past
    ``PUBLISH_AFTER``. The registry writes only what changed, and never raises."""
    global _refresh_at
    with _publish_lock:
        still_open = ledger.sweep()
        ledger.leaks_unpublished = False  # written now
        now = time.monotonic()
        _refresh_at = now + registry.REFRESH_EVERY
        entries = []
        for record in still_open:
            wrapper = record.wrapper()
            if wrapper is None:
                continue
            shown = record.publishable(now) and vendors.is_applicable(record.vendor)
            setattr(wrapper, PUBLISHED, shown)
            if shown:
                entries.append(record.held(wrapper))
        registry.publisher.publish(holders.directory(), entries, source="django")


def kept_entry(connection: BaseDatabaseWrapper) -> registry.HeldConnection | None:
    """The registry's entry of ``connection`` (open now) as PARK keeps it between requests:
    opened when and where its first request opened it, held by no thread but the lot
    (:data:`~pa_dbhealth.core.registry.KEPT_THREAD`); None when it is not in the ledger or
    its vendor has no registry."""
    record = ledger.records.get(getattr(connection, OPENING, 0))
    if record is None or not vendors.is_applicable(record.vendor):
        return None
    held = record.held(connection)
    return dataclasses.replace(held, thread=registry.KEPT_THREAD, stack=None, leak=None)


def is_published(connection: BaseDatabaseWrapper) -> bool:
    return bool(getattr(connection, PUBLISHED, False))


def touch(execute: Any, sql: Any, params: Any, many: bool, context: Any) -> Any:
    """An execute wrapper: note the end of each query, and refresh the registry when due;
    count a statement that would pin a multiplexer's connection (:mod:`.pinning`)."""
    if type(sql) is str and pins.suspect(sql):
        pinning.note(sql, context["connection"])
    try:
        return execute(sql, params, many, context)
    finally:
        now = time.monotonic()
        note_use(context["connection"], now)
        if due(now):
            publish()


def watch_close(connection: BaseDatabaseWrapper) -> None:
    """On each close: the thread no longer holds the connection; a published one is
    republished, so its entry leaves the registry."""
    close = connection.close

    def closing() -> None:
        try:
            close()
        finally:
            forget_wrapper(connection)
            if is_published(connection):
                publish()

    connection.close = closing  # type: ignore[method-assign]
