"""Behind a multiplexer: noticing one between the app and the server, judging what matters
there, and the findings of the audit of what pins (docs/outgrowing.md).

A face asks the server where it listens (``vendors.pooler.server_place``) and, on
PostgreSQL, PgBouncer's admin console; :func:`notice` tells from those whether something is
in between, :func:`judge` what follows, :func:`pin_findings` what the app's code pins.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from pa_dbhealth.core import findings, pin_log, pins
from pa_dbhealth.core.findings import Finding
from pa_dbhealth.core.vendors.pooler import PgBouncerFacts, ServerPlace

DEFAULT_PORTS = {"mysql": 3306, "postgresql": 5432}
SHARED_PREPARED_FROM = (1, 21)  # PgBouncer tracks protocol-level prepared statements
MAX_PIN_FINDINGS = 10
_MYSQL_POOLERS = "a proxy or multiplexer (ProxySQL, MySQL Router or MaxScale)"
_PG_POOLERS = "a connection pooler (PgBouncer, pgcat or Supavisor)"


@dataclass(frozen=True)
class Between:
    """What stands between the app and the server, and how it was noticed."""

    name: str  # "PgBouncer 1.18.0", or the kinds it may be
    evidence: str  # "the server listens on port 5432; the app connects to 6432"
    pgbouncer: PgBouncerFacts | None = None

    def as_dict(self) -> dict[str, Any]:
        pgbouncer = None if self.pgbouncer is None else self.pgbouncer.as_dict()
        return {"name": self.name, "evidence": self.evidence, "pgbouncer": pgbouncer}

    @property
    def transaction_mode(self) -> bool | None:
        """Whether it hands out server connections per transaction (None: not known)."""
        if self.pgbouncer is None:
            return None
        return self.pgbouncer.pool_mode in ("transaction", "statement")


def configured_port(vendor: str, host: Any, port: Any) -> int | None:
    """The port the app connects to (None: a Unix socket, or not a number). An empty host
    is the Unix socket for both drivers, and so is ``localhost`` for the MySQL ones."""
    name = str(host or "").strip().lower()
    if not name or name.startswith("/") or (vendor == "mysql" and name == "localhost"):
        return None
    text = str(port or "").strip()
    if not text:
        return DEFAULT_PORTS.get(vendor)
    return int(text) if text.isdigit() else None


def notice(
    vendor: str,
    port: int | None,
    place: ServerPlace | None,
    ask_pgbouncer: Callable[[], PgBouncerFacts | None] | None = None,
) -> Between | None:
    """Something in between: the server listens on another port than the one the app
    connects to (or the app connects over TCP and the server sees a Unix socket). Only
    then is ``ask_pgbouncer`` called (a PostgreSQL face's look at PgBouncer's console), so a
    direct connection costs no extra login."""
    if place is None or port is None or port == place.port:
        return None
    if place.port is None:
        evidence = f"the app connects to port {port}; the server sees a Unix-socket connection"
    else:
        evidence = f"the server listens on port {place.port}; the app connects to port {port}"
    pgbouncer = ask_pgbouncer() if ask_pgbouncer is not None else None
    if pgbouncer is not None:
        return Between(f"PgBouncer {pgbouncer.version}", evidence, pgbouncer)
    return Between(_MYSQL_POOLERS if vendor == "mysql" else _PG_POOLERS, evidence)


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:2]:
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def judge(
    who: str,
    between: Between,
    *,
    kept: str,
    server_side_cursors: str | None,
    prepares: str | None,
) -> list[Finding]:
    """I036 always; W037 when ``server_side_cursors`` (the fix: the setting that turns them
    off) in transaction mode; E034 when ``prepares`` (the fix) and PgBouncer cannot share
    prepared statements. ``kept``: the face's name for keeping connections."""
    facts = between.pgbouncer
    if facts is not None:
        pool = (
            f"The cap that matters is PgBouncer's pool: default_pool_size = "
            f"{facts.default_pool_size} server connection(s) per user and database, "
            f"pool_mode = {facts.pool_mode}, max_client_conn = {facts.max_client_conn}."
        )
    else:
        pool = (
            "The cap that matters is the pooler's pool of server connections, not the "
            "account's: size it to the account's cap."
        )
    found = [findings.behind_multiplexer(who, between.name, between.evidence, pool, kept)]
    in_transactions = between.transaction_mode is not False
    if server_side_cursors and in_transactions and between.name != _MYSQL_POOLERS:
        mode = "in transaction mode" if facts is not None else "(if it pools per transaction)"
        found.append(
            findings.server_side_cursors_behind_pooler(who, between.name, mode, server_side_cursors)
        )
    if prepares and facts is not None and facts.pool_mode != "session":
        shared = (
            _version(facts.version) >= SHARED_PREPARED_FROM and facts.max_prepared_statements > 0
        )
        if not shared:
            found.append(findings.prepared_statements_unsupported(who, between.name, prepares))
    return found


def socket_check_blind(found: list[Finding], fix: str) -> list[Finding]:
    """Behind a pooler the socket check (the middleware's, ``install()``'s) sees only the
    link to the pooler, never the server's idle kill: W006's fix is then the check with a
    round trip (``fix``)."""
    return [replace(f, hint=fix) if f.id == "pa_dbhealth.W006" else f for f in found]


def pin_findings(found: list[pin_log.PinSite], multiplexers: tuple[str, ...]) -> list[Finding]:
    """W035 for each code site that breaks a rule of ``multiplexers``, most frequent first,
    at most ``MAX_PIN_FINDINGS``."""
    chosen = pin_log.applying(found, multiplexers)
    fixes = {rule.name: rule.fix for rule in pins.RULES}
    return [
        findings.pins_connections(site.site, site.what, site.count, breaks, fixes[site.rule])
        for site, breaks in chosen[:MAX_PIN_FINDINGS]
    ]
