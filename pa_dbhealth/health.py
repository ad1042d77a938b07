"""How healthy each database is right now: one probe per alias and the status rule.

No request objects here: the health view (JSON and Prometheus) renders what this module
decides. A probe costs one round trip (``vendors.account_snapshot``) on the alias's
per-thread connection; it opens that connection with a short connect timeout when it is
not open yet, and then closes it again, so the check leaves no connection behind.
"""

from __future__ import annotations

import contextlib
import enum
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import Error as DatabaseError
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

from pa_dbhealth import conf, tracker, vendors
from pa_dbhealth.errors import Classified, Kind, classify
from pa_dbhealth.hygiene import idle_limit
from pa_dbhealth.retry import single_attempt


class Status(enum.Enum):
    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return list(Status).index(self)


@dataclass(frozen=True)
class DatabaseHealth:
    """The health of one alias: its status, the account's connections, or what went wrong."""

    alias: str
    vendor: str
    status: Status
    snapshot: vendors.AccountSnapshot | None = None
    reasons: tuple[str, ...] = ()  # why the status is not ok, in words
    error: str | None = None  # "connection cap reached", "server unreachable", ...
    detail: str | None = None  # the driver's code and message
    applicable: bool = True
    note: str = ""

    @property
    def up(self) -> bool:
        """Whether the server answered the probe (always true where it does not apply)."""
        return self.error is None

    def as_dict(self) -> dict[str, Any]:
        snapshot = self.snapshot
        data: dict[str, Any] = {
            "status": self.status.value,
            "vendor": self.vendor,
            "connections": {
                "total": snapshot.total if snapshot else None,
                "active": snapshot.active if snapshot else None,
                "sleeping": snapshot.sleeping if snapshot else None,
                "limit": snapshot.account_limit if snapshot else None,
                "headroom": snapshot.headroom if snapshot else None,
                "longest_idle_seconds": snapshot.longest_idle_seconds if snapshot else None,
            },
            "wait_timeout": snapshot.wait_timeout if snapshot else None,
            "process": process_figures(),
        }
        if self.reasons:
            data["reasons"] = list(self.reasons)
        if self.error is not None:
            data["error"] = self.error
            data["detail"] = self.detail
        if not self.applicable:
            data["note"] = self.note
        return data


@dataclass(frozen=True)
class Report:
    """The health of every probed alias and the worst of their statuses."""

    databases: list[DatabaseHealth] = field(default_factory=list)

    @property
    def status(self) -> Status:
        return max((db.status for db in self.databases), key=lambda s: s.rank, default=Status.OK)


def process_figures() -> dict[str, int]:
    """This process's connection counts from the tracker (opened, closed, open, leaks, ...)."""
    return tracker.figures()


def judge(snapshot: vendors.AccountSnapshot) -> tuple[Status, tuple[str, ...]]:
    """ok / warning / critical for a snapshot the probe could take, with the reasons.

    critical: no headroom left (the next connection gets 1226); warning: one connection
    left, or a connection idle past the staleness limit (it is about to be dropped).
    """
    status, reasons = Status.OK, []
    headroom, limit = snapshot.headroom, snapshot.account_limit
    if headroom is not None and headroom <= 0:
        status = Status.CRITICAL
        reasons.append(f"all {limit} connections of the account are in use: the next one gets 1226")
    elif headroom == 1:
        status = Status.WARNING
        reasons.append(f"{snapshot.total} of {limit} connections in use: one left")
    if snapshot.wait_timeout:
        stale_after = idle_limit(snapshot.wait_timeout, conf.get_settings().TIMEOUT_MARGIN).seconds
        if snapshot.longest_idle_seconds >= stale_after:
            if status is Status.OK:
                status = Status.WARNING
            reasons.append(
                f"a connection has been idle {snapshot.longest_idle_seconds} s; the server "
                f"drops idle connections after {snapshot.wait_timeout} s "
                f"(stale after {stale_after:g} s)"
            )
    return status, tuple(reasons)


_ERRORS = {
    Kind.ACCOUNT_CAP: "connection cap reached",
    Kind.SERVER_USER_CAP: "connection cap reached",
    Kind.TOO_MANY: "server connection limit reached",
    Kind.HOURLY_QUOTA: "hourly quota exhausted",
    Kind.UNREACHABLE: "server unreachable",
    Kind.LOST: "connection lost",
    Kind.ACCESS_DENIED: "access denied",
    Kind.UNKNOWN_DATABASE: "unknown database",
}


def _failed(alias: str, vendor: str, classified: Classified) -> DatabaseHealth:
    error = _ERRORS.get(classified.kind, "database error")
    return DatabaseHealth(
        alias, vendor, Status.CRITICAL, reasons=(error,), error=error, detail=classified.short
    )


# The connect option each driver reads as "seconds to wait for the server".
_TIMEOUT_OPTION = {"mysql": "connect_timeout", "postgresql": "connect_timeout"}


def connect(connection: BaseDatabaseWrapper, timeout: float) -> None:
    """Open ``connection`` waiting at most ``timeout`` seconds (rounded up) for the server.

    The timeout goes into a copy of the settings this thread's connection object holds
    while it connects: the shared ``DATABASES`` entry is never changed, so no other request
    and no later connect sees it. A shorter ``connect_timeout`` in ``OPTIONS`` is kept, and
    a connection pool (PostgreSQL ``OPTIONS["pool"]``) keeps its own timeout. The connect is
    not retried when the cap is full (``retry.single_attempt``): the check reports it at once.
    """
    original = connection.settings_dict
    options = dict(original.get("OPTIONS") or {})
    key = _TIMEOUT_OPTION.get(connection.vendor)
    if key is not None and not options.get("pool"):
        seconds = max(1, math.ceil(timeout))
        current = options.get(key)
        if not (isinstance(current, int | float) and 0 < current <= seconds):
            options[key] = seconds
    connection.settings_dict = {**original, "OPTIONS": options}
    try:
        with single_attempt():
            connection.ensure_connection()
    finally:
        connection.settings_dict = original


def _close(connection: BaseDatabaseWrapper) -> None:
    if not connection.in_atomic_block:
        with contextlib.suppress(DatabaseError):
            connection.close()


def probe(alias: str, *, connect_timeout: float | None = None) -> DatabaseHealth:
    """Count the account's connections on ``alias``'s server and judge them.

    Uses the thread's connection for ``alias``: if it is open (the request used the
    database already) it is used and left open for the request cycle to close; if not,
    it is opened with ``connect_timeout`` (``HEALTH_CONNECT_TIMEOUT``) and closed again.
    Never raises a database error: a failure is a critical result naming it.
    """
    connection = connections[alias]
    vendor = connection.vendor
    if not vendors.is_applicable(connection):
        note = vendors.server_facts(connection).note  # asks no server
        return DatabaseHealth(alias, vendor, Status.OK, applicable=False, note=note)
    timeout = connect_timeout or conf.get_settings().HEALTH_CONNECT_TIMEOUT
    opened = False
    try:
        for attempt in (1, 2):
            if connection.connection is None:
                opened = True
                connect(connection, timeout)
            try:
                snapshot = vendors.account_snapshot(connection)
                break
            except DatabaseError as exc:
                # A kept connection the server dropped meanwhile (2006): open a fresh one,
                # once, unless a transaction still needs it.
                if attempt == 2 or opened or connection.in_atomic_block:
                    raise
                if classify(exc).kind is not Kind.LOST:
                    raise
                _close(connection)
    except DatabaseError as exc:
        return _failed(alias, vendor, classify(exc))
    finally:
        if opened:
            _close(connection)
    status, reasons = judge(snapshot)
    return DatabaseHealth(alias, vendor, status, snapshot=snapshot, reasons=reasons)


def check(aliases: Iterable[str] | None = None, *, connect_timeout: float | None = None) -> Report:
    """Probe each alias (every one in ``DATABASES`` by default), one after the other."""
    chosen = list(connections) if aliases is None else list(aliases)
    return Report([probe(alias, connect_timeout=connect_timeout) for alias in chosen])
