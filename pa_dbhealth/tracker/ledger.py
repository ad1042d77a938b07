"""The process's ledger: the record of every connection open now (closings noticed lazily,
when the ledger is swept), probable leaks reported once each, and counts since start."""

from __future__ import annotations

import logging
import threading
from typing import Final

from pa_dbhealth.core.counters import Counters
from pa_dbhealth.tracker.records import Record, TrackedConnection

logger = logging.getLogger("pa_dbhealth.tracker")

_lock = threading.Lock()
counts = Counters()
_next_token = 0
# token -> the record of that opening; changed in place, never rebound (the middleware
# holds it: an empty ledger tells it no connection is open)
records: Final[dict[int, Record]] = {}
leaks_unpublished = False  # a probable leak was found since the registry was last written


def next_token() -> int:
    """A number for a new opening, never given before in this process."""
    global _next_token
    with _lock:
        _next_token += 1
        return _next_token


def add(record: Record) -> None:
    """Count the opening ``record`` describes and keep it until it closes."""
    with _lock:
        counts.count("opened")
        records[record.token] = record


def sweep() -> list[Record]:
    """Drop closed connections, report new probable leaks; returns the open records."""
    global leaks_unpublished
    new_leaks = []
    with _lock:
        for token, record in list(records.items()):
            if not record.is_open():
                del records[token]
                counts.count("closed")
            elif not record.leak and (record.at_import or not record.holder_expected()):
                record.leak = True
                counts.count("leaks")
                new_leaks.append(record)
        still_open = list(records.values())
    if new_leaks:
        leaks_unpublished = True  # the registry shows probable leaks: at the next occasion
    for record in new_leaks:
        _report_leak(record)
    return still_open


def _report_leak(record: Record) -> None:
    leak = record.leak_found()
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


def anything_open() -> bool:
    """Whether a connection may be open in this process: False means none is (every opening
    is recorded; the records of closed ones go at the next sweep)."""
    return bool(records)


def open_connections() -> list[TrackedConnection]:
    """This process's open connections, in all threads, oldest first."""
    return [record.snapshot() for record in sweep()]


def figures() -> dict[str, int]:
    """Process-wide counts since start: opened, closed, open now, probable leaks reported,
    connects retried and given up by the retrying backend, connections it handed from a
    thread done with one to a thread waiting for the cap (each also counts as a close and an
    opening: the wrapper that receives it sees it open), and single-attempt looks refused by
    the cap (not give-ups: nobody waited)."""
    still_open = sweep()
    return {**counts.snapshot(), "open": len(still_open)}


def _count(figure: str) -> None:
    counts.count(figure)


def note_connect_retry(alias: str) -> None:
    """A connect refused by the cap is being retried (called by the retrying backend)."""
    _count("connect_retries")


def note_connect_giveup(alias: str) -> None:
    """The retrying backend gave up on a connect refused by the cap."""
    _count("connect_giveups")


def note_probe_refused(alias: str) -> None:
    """A look's single connect attempt (health view, commands, cap report) was refused by the
    cap: not a give-up, nothing waited."""
    _count("probes_refused")


def note_handoff(alias: str) -> None:
    """The retrying backend handed a connection to a thread waiting for the cap."""
    _count("connect_handoffs")
