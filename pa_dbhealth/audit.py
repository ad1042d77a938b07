"""The audit of each database alias: its settings held against the live server's limits.

``audit_alias`` asks the server once (one bounded look, on a connection of its own unless
the thread has one open) and decides findings from the catalogue in ``core.findings``: the
shared rules of ``core.audit`` plus Django's own (``CONN_MAX_AGE``, ``CONN_HEALTH_CHECKS``,
pools). The ``dbcheck`` command and the database-tagged system checks both call it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

from django.conf import settings
from django.db import DatabaseError, NotSupportedError, connections

from pa_dbhealth import behind, conf, holders, server_version
from pa_dbhealth.alias_look import Question, look_at_alias
from pa_dbhealth.core import findings, vendors
from pa_dbhealth.core.audit import Audit, Terms, budget, judge_limits, server_findings
from pa_dbhealth.core.errors import server_address
from pa_dbhealth.core.findings import Finding, Level
from pa_dbhealth.core.look import Asked, ask_server
from pa_dbhealth.core.workers import concurrent_workers
from pa_dbhealth.half_switched import half_switched
from pa_dbhealth.middleware import MIDDLEWARE_PATH

__all__ = ["MIDDLEWARE_PATH", "Audit", "audit_alias", "site_findings"]

TERMS = Terms(
    "PA_DBHEALTH",
    "manage.py dbconnections",
    "DATABASES",
    ("HOST and PORT", "USER and PASSWORD", "NAME"),
    paging="QuerySet slicing, .iterator(chunk_size=...)",
)
RETRYING_ENGINE = "pa_dbhealth.backends.mysql"
T = TypeVar("T")

# django-db-connection-pool's defaults (dj_db_conn_pool.core.PoolContainer.pool_default_params)
DJ_DB_CONN_POOL_DEFAULTS = {"POOL_SIZE": 10, "MAX_OVERFLOW": 10, "RECYCLE": 15 * 60}
# psycopg_pool.ConnectionPool's defaults, which Django's OPTIONS["pool"] = True uses
PSYCOPG_POOL_DEFAULTS = {"min_size": 4, "max_lifetime": 3600.0}


def _waits_in_line(db: dict[str, Any], options: Any) -> bool:
    """Connections held only while a request uses them, and a refused connect waits in the
    account's line (the retrying backend, LINE, CONNECT_RETRY, CONN_MAX_AGE = 0)."""
    return (
        db.get("ENGINE") == RETRYING_ENGINE
        and bool(options.LINE)
        and options.CONNECT_RETRY > 0
        and db.get("CONN_MAX_AGE", 0) == 0
    )


def site_findings() -> list[Finding]:
    """Findings about the site as a whole, not one alias: the middleware, the registry."""
    found = holders.refused()
    if MIDDLEWARE_PATH not in getattr(settings, "MIDDLEWARE", []):
        found.append(findings.middleware_missing(MIDDLEWARE_PATH))
    return found


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
    who = f"DATABASES[{alias!r}]"
    fallback_cap = conf.get_settings().CONNECTION_LIMIT
    fitting = cap or fallback_cap
    if str(db.get("ENGINE", "")).startswith("dj_db_conn_pool"):
        options = {**DJ_DB_CONN_POOL_DEFAULTS, **(db.get("POOL_OPTIONS") or {})}
        size, overflow = int(options["POOL_SIZE"]), int(options["MAX_OVERFLOW"])
        recycle = float(options["RECYCLE"])
        kind = "django-db-connection-pool"
        good_size, good_overflow = max(fitting - 1, 1), 1 if fitting > 1 else 0
        fix = (
            f"Set {who}['POOL_OPTIONS'] = {{'POOL_SIZE': {good_size}, "
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
            f"Set {who}['OPTIONS']['pool'] = {{'min_size': 1, 'max_size': {fitting}, "
            f"'max_lifetime': {int(limit)}}}."
        )
    else:
        return []
    found = []
    if cap is not None and size + overflow > cap:
        found.append(findings.pool_too_big(who, kind, size, overflow, cap, fix))
    if timeout is not None and (recycle < 0 or recycle > limit):
        shown = float("inf") if recycle < 0 else recycle
        found.append(findings.pool_recycle_too_long(who, kind, shown, timeout, fix, vendor))
    return found


def _settings_findings(
    alias: str, db: dict[str, Any], timeout: int | None, limit: float, vendor: str
) -> list[Finding]:
    setting = f"DATABASES[{alias!r}]['CONN_MAX_AGE']"
    found = []
    age = db.get("CONN_MAX_AGE", 0)
    if age is None and timeout is not None:
        fix = (
            f"Set {setting} to 0, or to a number of seconds below the server's idle timeout "
            "minus TIMEOUT_MARGIN."
        )
        found.append(findings.kept_forever(setting, "None", timeout, vendor, fix))
    elif age is not None and timeout is not None and age > limit:
        margin = conf.get_settings().TIMEOUT_MARGIN
        why = (
            f"the server's {timeout} s minus TIMEOUT_MARGIN {margin}"
            if margin < timeout
            else f"half the server's {timeout} s, since TIMEOUT_MARGIN {margin} is not smaller"
        )
        fix = (
            f"Set {setting} = {int(limit)} or less ({why}), or 0 to close connections after "
            "each request."
        )
        found.append(findings.kept_past_timeout(setting, str(int(age)), timeout, vendor, fix))
    if (age is None or age > 0) and not db.get("CONN_HEALTH_CHECKS", False):
        shown = "None" if age is None else str(age)
        found.append(
            findings.kept_untested(
                f"DATABASES[{alias!r}] keeps connections (CONN_MAX_AGE = {shown}) without "
                "CONN_HEALTH_CHECKS",
                f"Set DATABASES[{alias!r}]['CONN_HEALTH_CHECKS'] = True (Django 4.1+), or add "
                f"{MIDDLEWARE_PATH!r}, whose liveness check costs no round trip.",
            )
        )
    return found


def _asking(alias: str) -> Callable[[Question[T]], T]:
    """The audit's look at ``alias``, raising ``server_version.Refused`` when Django refuses
    the server (its version) instead of a database error the audit would misread."""

    def ask(question: Question[T]) -> T:
        try:
            return look_at_alias(alias, question)
        except NotSupportedError as exc:
            raise server_version.Refused(exc) from exc

    return ask


def audit_alias(alias: str, *, offline: bool = False) -> Audit:
    """Audit one alias; with ``offline`` nothing connects and PA_DBHEALTH's figures are used."""
    connection = connections[alias]
    db = connection.settings_dict
    vendor = connection.vendor
    who = repr(alias)
    if not vendors.is_applicable(vendor):
        return Audit.not_applicable(alias, vendor, connection.display_name)

    report = Audit(alias, vendor)
    unfinished = half_switched(alias, db, vendor)
    if unfinished is not None:
        report.findings.append(unfinished)
        if unfinished.level >= Level.ERROR:
            return report  # the driver would fail on it with a TypeError, not a finding
    asked = Asked(None, None, "--offline") if offline else _ask(alias, report)
    if asked is None:
        return report  # what the settings would mean for a server not seen can wait
    facts, snapshot = asked.facts, asked.snapshot

    options = conf.get_settings()
    host, port = str(db.get("HOST") or ""), str(db.get("PORT") or "")
    limits = judge_limits(report, who, facts, snapshot, options, asked.reason, TERMS, (host, port))
    report.findings.extend(_settings_findings(alias, db, limits.timeout, limits.idle_limit, vendor))
    report.findings.extend(
        _pool_findings(alias, db, limits.cap, limits.timeout, limits.idle_limit, vendor)
    )
    pooler = None
    if facts is not None:
        pooler, found_behind = behind.findings_for(alias)
        report.findings.extend(found_behind)
        if pooler is not None:
            report.server["pooler"] = pooler.as_dict()
            report.findings = behind.kept_behind(alias, pooler, report.findings)
    if pooler is None:  # behind a multiplexer the workers are the pooler's clients, not the cap's
        report.findings.extend(_budget(alias, db, vendor, limits.cap))
    if facts is not None and snapshot is not None:
        report.findings.extend(
            server_findings(who, facts, snapshot, limits.timeout, TERMS, f"--database {alias} ")
        )
    return report


def _ask(alias: str, report: Audit) -> Asked | None:
    """The server's facts and the account's connections (``core.look.ask_server``); None
    when it could not be asked, the findings saying why already on ``report``."""
    who = repr(alias)
    db = connections[alias].settings_dict
    address = server_address(db.get("HOST"), db.get("PORT"))
    try:
        asked = ask_server(report, who, address, TERMS, _asking(alias), (DatabaseError,))
    except server_version.Refused as exc:  # a Django too new for the server
        seconds = conf.get_settings().HEALTH_CONNECT_TIMEOUT
        report.findings.extend(server_version.refused_findings(alias, who, exc, seconds))
        return None
    if asked is not None and asked.facts is not None and report.vendor == "mysql":
        report.findings.extend(server_version.version_findings(who, asked.facts.version))
    return asked


def _budget(alias: str, db: dict[str, Any], vendor: str, cap: int | None) -> list[Finding]:
    """E007/W008/W022/I019 for an alias: each worker holds one connection per alias of the
    same account; ENGINE, LINE and CONNECT_RETRY say whether the excess waits."""
    options = conf.get_settings()
    aliases = _same_account_aliases(alias)
    wait = (
        f"ENGINE {RETRYING_ENGINE!r} makes short bursts wait instead of failing."
        if vendor == "mysql" and db.get("ENGINE") != RETRYING_ENGINE
        else ""
    )
    return budget(
        repr(alias),
        cap,
        concurrent_workers(options.WORKERS),
        aliases,
        f"{aliases} alias(es)",
        options.TASK_CONNECTIONS,
        vendor,
        replace(TERMS, wait_at_cap=wait),
        waits=_waits_in_line(db, options),
    )
