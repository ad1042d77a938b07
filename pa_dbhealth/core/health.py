"""How healthy a database is right now: the status rule, the probe's result, the report.

A face probes each database (one bounded look, ``vendors.account_snapshot``) and renders
what this module decides: JSON, Prometheus text (``render``), a page.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from pa_dbhealth.core.errors import Classified, Kind
from pa_dbhealth.core.timeouts import idle_limit
from pa_dbhealth.core.vendors import AccountSnapshot


class Status(enum.Enum):
    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return list(Status).index(self)


CAP_REACHED = "connection cap reached"  # the error of a probe the cap refused


@dataclass(frozen=True)
class DatabaseHealth:
    """The health of one database: its status, the account's connections, or what went wrong."""

    alias: str
    vendor: str
    status: Status
    snapshot: AccountSnapshot | None = None
    reasons: tuple[str, ...] = ()  # why the status is not ok, in words
    error: str | None = None  # "connection cap reached", "server unreachable", ...
    detail: str | None = None  # the driver's code and message
    applicable: bool = True
    note: str = ""

    @property
    def up(self) -> bool:
        """Whether the server answered the probe (always true where it does not apply)."""
        return self.error is None

    def as_dict(
        self, process: dict[str, int] | None = None, holders: dict[str, Any] | None = None
    ) -> dict[str, Any]:
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
        }
        if process is not None:
            data["process"] = process
        if holders is not None:
            data["holders"] = holders
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
    """The health of every probed database and the worst of their statuses."""

    databases: list[DatabaseHealth] = field(default_factory=list)

    @property
    def status(self) -> Status:
        return max((db.status for db in self.databases), key=lambda s: s.rank, default=Status.OK)


def judge(snapshot: AccountSnapshot, margin: float) -> tuple[Status, tuple[str, ...]]:
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
        stale_after = idle_limit(snapshot.wait_timeout, margin).seconds
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
    Kind.ACCOUNT_CAP: CAP_REACHED,
    Kind.SERVER_USER_CAP: CAP_REACHED,
    Kind.TOO_MANY: "server connection limit reached",
    Kind.HOURLY_QUOTA: "hourly quota exhausted",
    Kind.UNREACHABLE: "server unreachable",
    Kind.LOST: "connection lost",
    Kind.ACCESS_DENIED: "access denied",
    Kind.UNKNOWN_DATABASE: "unknown database",
}
TIMED_OUT = "server did not answer in time"


def failed(alias: str, vendor: str, classified: Classified) -> DatabaseHealth:
    """The critical result of a probe that met a database error."""
    error = _ERRORS.get(classified.kind, "database error")
    return DatabaseHealth(
        alias, vendor, Status.CRITICAL, reasons=(error,), error=error, detail=classified.short
    )


def timed_out(alias: str, vendor: str, seconds: float) -> DatabaseHealth:
    """The critical result of a probe the server did not answer within its bound."""
    detail = f"no answer within {seconds:g} s"
    return DatabaseHealth(
        alias, vendor, Status.CRITICAL, reasons=(TIMED_OUT,), error=TIMED_OUT, detail=detail
    )
