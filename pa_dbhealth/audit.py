"""The audit: each database alias's settings held against the live server's limits.

``audit_alias`` asks the server once (at most one connection, closed again if it opened
it), then decides findings from the catalogue in ``findings``. The ``dbcheck`` command
and the database-tagged system checks both call it, so both say the same things.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connections
from django.db.backends.base.base import BaseDatabaseWrapper

from pa_dbhealth import conf, findings, vendors
from pa_dbhealth.errors import Kind, classify, server_address
from pa_dbhealth.findings import Finding, Level
from pa_dbhealth.hygiene import idle_limit
from pa_dbhealth.vendors import AccountSnapshot, ServerFacts
from pa_dbhealth.workers import concurrent_workers

# django-db-connection-pool's defaults (dj_db_conn_pool.core.PoolContainer.pool_default_params)
DJ_DB_CONN_POOL_DEFAULTS = {"POOL_SIZE": 10, "MAX_OVERFLOW": 10, "RECYCLE": 15 * 60}
# psycopg_pool.ConnectionPool's defaults, which Django's OPTIONS["pool"] = True uses
PSYCOPG_POOL_DEFAULTS = {"min_size": 4, "max_lifetime": 3600.0}

_CONNECT_HINTS = {
    Kind.ACCOUNT_CAP: "The account holds all its connections already: find them with "
    "`manage.py dbconnections` and free idle ones with --kill-idle; on PythonAnywhere, reload "
    "the web app or stop the task that holds them.",
    Kind.HOURLY_QUOTA: "The account's hourly quota is used up: waiting seconds will not help; "
    "it resets within the hour.",
    Kind.ACCESS_DENIED: "Check USER and PASSWORD in DATABASES.",
    Kind.UNKNOWN_DATABASE: "Check NAME in DATABASES (on PythonAnywhere: '<username>$<dbname>').",
}


@dataclass
class AliasAudit:
    alias: str
    vendor: str
    source: str  # "server": figures read from the live server; "settings": PA_DBHEALTH fallbacks
    server: dict[str, Any] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    def sorted_findings(self) -> list[Finding]:
        return sorted(self.findings, key=lambda f: (-f.level, f.id))

    def at_or_above(self, level: Level) -> list[Finding]:
        return [f for f in self.findings if f.level >= level]

    def as_dict(self) -> dict[str, Any]:
        return {
            "vendor": self.vendor,
            "source": self.source,
            "server": self.server,
            "findings": [f.as_dict() for f in self.sorted_findings()],
        }


def site_findings() -> list[Finding]:
    """Findings about the site as a whole, not one alias."""
    if findings.MIDDLEWARE_PATH not in getattr(settings, "MIDDLEWARE", []):
        return [findings.middleware_missing()]
    return []


def _probe(
    connection: BaseDatabaseWrapper,
) -> tuple[ServerFacts | None, AccountSnapshot | None, Exception | None, bool]:
    """``(facts, snapshot, error, connected)``, closing the connection if it opened it."""
    opened_here = connection.connection is None
    try:
        connection.ensure_connection()
    except DatabaseError as exc:
        return None, None, exc, False
    try:
        return vendors.server_facts(connection), vendors.account_snapshot(connection), None, True
    except DatabaseError as exc:
        return None, None, exc, True
    finally:
        if opened_here and not connection.in_atomic_block:
            connection.close()


def _same_account_aliases(alias: str) -> int:
    """How many aliases log in to the same server with the same user (each is a connection)."""
    mine = connections.settings[alias]
    key = (mine.get("HOST"), str(mine.get("PORT")), mine.get("USER"))
    return sum(
        1
        for other in connections.settings.values()
        if (other.get("HOST"), str(other.get("PORT")), other.get("USER")) == key
        and not other.get("TEST", {}).get("MIRROR")
    )


def _pool_findings(
    alias: str, db: dict[str, Any], cap: int | None, timeout: int | None, limit: float, vendor: str
) -> list[Finding]:
    found = []
    if str(db.get("ENGINE", "")).startswith("dj_db_conn_pool"):
        options = {**DJ_DB_CONN_POOL_DEFAULTS, **(db.get("POOL_OPTIONS") or {})}
        size, overflow = int(options["POOL_SIZE"]), int(options["MAX_OVERFLOW"])
        recycle = float(options["RECYCLE"])
        kind = "django-db-connection-pool"
        good_size, good_overflow = max((cap or 3) - 1, 1), 1 if (cap or 3) > 1 else 0
        fix = (
            f"Set DATABASES[{alias!r}]['POOL_OPTIONS'] = {{'POOL_SIZE': {good_size}, "
            f"'MAX_OVERFLOW': {good_overflow}, 'RECYCLE': {int(limit)}}} "
            "(POOL_SIZE + MAX_OVERFLOW <= the cap, RECYCLE below the idle timeout)."
        )
    elif isinstance(db.get("OPTIONS", {}).get("pool"), dict | bool) and db["OPTIONS"]["pool"]:
        pool = db["OPTIONS"]["pool"] if isinstance(db["OPTIONS"]["pool"], dict) else {}
        min_size = int(pool.get("min_size", PSYCOPG_POOL_DEFAULTS["min_size"]))
        size, overflow = int(pool.get("max_size") or min_size), 0
        recycle = float(pool.get("max_lifetime", PSYCOPG_POOL_DEFAULTS["max_lifetime"]))
        kind = "Django's connection pool (OPTIONS['pool'])"
        fix = (
            f"Set DATABASES[{alias!r}]['OPTIONS']['pool'] = {{'min_size': 1, 'max_size': "
            f"{cap or 3}, 'max_lifetime': {int(limit)}}}."
        )
    else:
        return []
    if cap is not None and size + overflow > cap:
        found.append(findings.pool_too_big(alias, kind, size, overflow, cap, fix))
    if timeout is not None and (recycle < 0 or recycle > limit):
        shown = float("inf") if recycle < 0 else recycle
        found.append(findings.pool_recycle_too_long(alias, kind, shown, timeout, fix, vendor))
    return found


def _budget_findings(alias: str, cap: int | None, vendor: str) -> list[Finding]:
    if cap is None:
        return []
    workers = concurrent_workers()
    if workers.number is None:
        return [findings.workers_unknown(alias, cap)]
    aliases = _same_account_aliases(alias)
    tasks = conf.get_settings().TASK_CONNECTIONS
    need = workers.number * aliases + tasks
    breakdown = f"{workers.number} worker(s) from {workers.source} x {aliases} alias(es)"
    if tasks:
        breakdown += f" + {tasks} task connection(s)"
    if need > cap:
        allowed = max((cap - tasks) // aliases, 0)
        return [findings.budget_over_cap(alias, need, breakdown, cap, allowed, vendor)]
    if need == cap:
        return [findings.budget_at_cap(alias, need, breakdown, cap, vendor)]
    return []


def _settings_findings(
    alias: str, db: dict[str, Any], timeout: int | None, limit: float, vendor: str
) -> list[Finding]:
    found = []
    age = db.get("CONN_MAX_AGE", 0)
    if age is None and timeout is not None:
        found.append(findings.conn_max_age_unlimited(alias, timeout, vendor))
    elif age is not None and timeout is not None and age > limit:
        found.append(findings.conn_max_age_too_long(alias, int(age), timeout, limit, vendor))
    if (age is None or age > 0) and not db.get("CONN_HEALTH_CHECKS", False):
        found.append(findings.no_health_checks(alias, age))
    return found


def _server_findings(
    alias: str, facts: ServerFacts, snapshot: AccountSnapshot, timeout: int | None
) -> list[Finding]:
    found = []
    if facts.net_read_timeout is not None:
        found.append(findings.net_read_timeout(alias, facts.net_read_timeout))
    if facts.vendor == "postgresql" and facts.idle_in_transaction_timeout is None:
        found.append(findings.idle_in_transaction_unlimited(alias))
    if timeout is not None:
        found.extend(
            findings.idle_past_timeout(alias, c.id, c.host, c.idle_seconds, timeout)
            for c in snapshot.connections
            if c.idle and c.idle_seconds > timeout
        )
    return found


def _connect_finding(alias: str, db: dict[str, Any], exc: Exception) -> Finding:
    classified = classify(exc)
    if classified.kind is Kind.UNREACHABLE:
        return findings.unreachable(alias, server_address(db), classified.short)
    hint = _CONNECT_HINTS.get(classified.kind, "Check DATABASES and the server's log.")
    return findings.cannot_connect(alias, classified.short, hint)


def audit_alias(alias: str, *, offline: bool = False) -> AliasAudit:
    """Audit one alias; with ``offline`` nothing connects and PA_DBHEALTH's figures are used."""
    connection = connections[alias]
    db = connection.settings_dict
    options = conf.get_settings()
    if not vendors.is_applicable(connection):
        about = vendors.server_facts(connection)
        return AliasAudit(
            alias,
            connection.vendor,
            "settings",
            about.as_dict(),
            [findings.not_applicable(alias, about.note)],
        )

    report = AliasAudit(alias, connection.vendor, "settings")
    facts: ServerFacts | None = None
    snapshot: AccountSnapshot | None = None
    if offline:
        reason = "--offline"
    else:
        facts, snapshot, error, connected = _probe(connection)
        if error is not None and not connected:
            report.findings.append(_connect_finding(alias, db, error))
            reason = "it could not be reached"
        elif error is not None:
            reason = f"no permission to read its limits: {classify(error).short}"
        else:
            reason = ""

    if facts is not None and snapshot is not None:
        report.source = "server"
        timeout, cap = facts.wait_timeout, facts.account_limit
        report.server = {
            **facts.as_dict(),
            "host": db.get("HOST") or "",
            "port": str(db.get("PORT") or ""),
            "connections": snapshot.total,
        }
    else:
        timeout, cap = options.SERVER_IDLE_TIMEOUT, options.CONNECTION_LIMIT
        report.server = {"wait_timeout": timeout, "account_limit": cap}
        report.findings.append(findings.server_not_asked(alias, reason, timeout, cap))

    limit = float("inf")
    if timeout is not None:
        limit, clamped = idle_limit(timeout, options.TIMEOUT_MARGIN)
        if clamped:
            report.findings.append(findings.margin_clamped(options.TIMEOUT_MARGIN, timeout, limit))
    report.server["idle_limit"] = None if timeout is None else limit

    vendor = connection.vendor
    report.findings.extend(_settings_findings(alias, db, timeout, limit, vendor))
    report.findings.extend(_pool_findings(alias, db, cap, timeout, limit, vendor))
    report.findings.extend(_budget_findings(alias, cap, vendor))
    if facts is not None and snapshot is not None:
        report.findings.extend(_server_findings(alias, facts, snapshot, timeout))
    return report
