"""How healthy each database alias is right now: one bounded look per alias.

No request objects here: the health view (JSON and Prometheus) renders what this module
and ``core.health`` decide. A probe costs one round trip (``vendors.account_snapshot``) on
the alias's open connection of this thread, or on a connection of its own, opened with a
short connect timeout and closed again, so the check leaves no connection behind. It
answers within ``HEALTH_CONNECT_TIMEOUT`` for the connect and as long again for the answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.signals import setting_changed
from django.db import Error as DatabaseError
from django.db import connections

from pa_dbhealth import conf, holders, tracker
from pa_dbhealth.alias_look import LookTimedOut, look_at_alias
from pa_dbhealth.core import render_holders, status_cache, vendors
from pa_dbhealth.core.errors import Kind, classify
from pa_dbhealth.core.health import DatabaseHealth, Report, Status, failed, judge, timed_out

__all__ = [
    "DatabaseHealth",
    "Report",
    "Status",
    "check",
    "holders_of",
    "probe",
    "process_figures",
    "shared_status",
]


def process_figures() -> dict[str, int]:
    """This process's connection counts from the tracker (opened, closed, open, leaks, ...)."""
    return tracker.figures()


def holders_of(result: DatabaseHealth) -> dict[str, Any] | None:
    """Who holds the database's connections: the probe's rows joined with the registry of
    holders, or the registry's view alone when the probe could not ask the server."""
    if not result.applicable:
        return None
    if result.snapshot is not None:
        held = holders.for_alias(result.alias, result.snapshot)
        return render_holders.server_view(result.snapshot.connections, held.by_id)
    held = holders.for_alias(result.alias)
    reason = f"the server could not be asked ({result.error})"
    return render_holders.registry_view(held.found, held.holders, reason)


def probe(alias: str, *, connect_timeout: float | None = None) -> DatabaseHealth:
    """Count the account's connections on ``alias``'s server and judge them. Never raises a
    database error: a failure is a critical result naming it."""
    connection = connections[alias]
    vendor = connection.vendor
    if not vendors.is_applicable(vendor):
        note = vendors.not_applicable(vendor, connection.display_name).note
        return DatabaseHealth(alias, vendor, Status.OK, applicable=False, note=note)
    options = conf.get_settings()
    seconds = connect_timeout or options.HEALTH_CONNECT_TIMEOUT
    kept = connection.connection is not None
    try:
        try:
            snapshot = look_at_alias(alias, vendors.account_snapshot, timeout=seconds)
        except DatabaseError as exc:
            # A kept connection dropped in a way its socket did not show (a NAT, a proxy):
            # ask once more on a connection of the probe's own.
            if not kept or classify(exc).kind is not Kind.LOST:
                raise
            if not connection.in_atomic_block:
                connection.close()
            snapshot = look_at_alias(alias, vendors.account_snapshot, timeout=seconds, reuse=False)
    except LookTimedOut as exc:
        return timed_out(alias, vendor, exc.seconds)
    except DatabaseError as exc:
        return failed(alias, vendor, classify(exc))
    status, reasons = judge(snapshot, options.TIMEOUT_MARGIN)
    return DatabaseHealth(alias, vendor, status, snapshot=snapshot, reasons=reasons)


def check(aliases: Iterable[str] | None = None, *, connect_timeout: float | None = None) -> Report:
    """Probe each alias (every one in ``DATABASES`` by default), one after the other."""
    chosen = list(connections) if aliases is None else list(aliases)
    return Report([probe(alias, connect_timeout=connect_timeout) for alias in chosen])


def shared_status(
    aliases: Iterable[str] | None = None, fresh_for: float = status_cache.FRESH_FOR
) -> Report:
    """:func:`check`'s report as anonymous views share it: looked up at most once every
    ``fresh_for`` seconds per process (``core.status_cache``)."""
    chosen = tuple(connections) if aliases is None else tuple(aliases)
    return status_cache.shared.report(
        ("django", chosen), lambda: check(chosen), fresh_for=fresh_for
    )


def _forget_status(*, setting: str, **kwargs: Any) -> None:
    if setting in ("DATABASES", "PA_DBHEALTH"):
        status_cache.shared.clear()


setting_changed.connect(_forget_status, dispatch_uid="pa_dbhealth.health.forget_status")
