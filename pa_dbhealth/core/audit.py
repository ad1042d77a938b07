"""The audit's rules that hold for every face: limits, budget, what the server says.

A face (Django's ``dbcheck``, ``pa_dbhealth.sqlalchemy.audit``) looks at the server once,
then builds an :class:`Audit` from its own settings' findings and these shared ones. The
face words the fixes in its own settings' names (:class:`Terms`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pa_dbhealth.core import findings, vendors
from pa_dbhealth.core.findings import Finding, Level
from pa_dbhealth.core.options import Options
from pa_dbhealth.core.timeouts import idle_limit
from pa_dbhealth.core.vendors import AccountSnapshot, ServerFacts
from pa_dbhealth.core.workers import Workers

# What a URL calls its host and port, its user and password, its database's name.
URL_PARTS = ("the host and port", "the user and password", "the database name")


@dataclass(frozen=True)
class Terms:
    """How a face names things in its fixes: each face gives only its own words."""

    options: str  # what the face calls the options dict: "PA_DBHEALTH", "app.config['PA_DBHEALTH']"
    connections_command: str  # "manage.py dbconnections"
    place: str  # where the connection is described: "DATABASES", "the URL"
    parts: tuple[str, str, str] = URL_PARTS  # what ``place`` calls the address, login, name
    offline_flag: str = "--offline"
    wait_at_cap: str = ""  # a sentence: how this face makes a burst wait instead of failing
    # How this face's code fetches a large result a piece at a time (I012's fix).
    paging: str = "LIMIT/OFFSET or keyset pagination, cursor.fetchmany(n)"
    workers_also: str = ""  # another way this face is told the workers (I019's fix)

    def option(self, key: str) -> str:
        return f"{self.options}[{key!r}]"

    @property  # where the fixes say the address is set: "HOST and PORT in DATABASES"
    def address(self) -> str:
        return f"{self.parts[0]} in {self.place}"

    @property
    def credentials(self) -> str:
        return f"{self.parts[1]} in {self.place}"

    @property
    def database_name(self) -> str:
        return f"{self.parts[2]} in {self.place}"


@dataclass
class Audit:
    """The findings about one database, and the server's figures they were judged on."""

    alias: str
    vendor: str
    source: str = "settings"  # "server": figures read from the live server; "settings": fallbacks
    server: dict[str, Any] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    @classmethod
    def not_applicable(cls, name: str, vendor: str, display_name: str) -> Audit:
        """The audit of a database whose vendor has no limits to judge (SQLite, ...)."""
        about = vendors.not_applicable(vendor, display_name)
        finding = findings.not_applicable(repr(name), about.note)
        return cls(name, vendor, "settings", about.as_dict(), [finding])

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


@dataclass(frozen=True)
class Limits:
    """The server's idle timeout and the account's cap the audit judges by (None: none)."""

    timeout: int | None
    cap: int | None
    idle_limit: float  # seconds after which a connection is stale (inf: never)


def judge_limits(
    report: Audit,
    who: str,
    facts: ServerFacts | None,
    snapshot: AccountSnapshot | None,
    options: Options,
    reason: str,
    terms: Terms,
    address: tuple[str, str],
) -> Limits:
    """Fill ``report.server`` from what the server said (or, when it was not asked because
    of ``reason``, from the options), add I015/W016, and return the limits to judge by."""
    if facts is not None and snapshot is not None:
        report.source = "server"
        timeout, cap = facts.wait_timeout, facts.account_limit
        host, port = address
        report.server = {
            **facts.as_dict(),
            "host": host,
            "port": port,
            "connections": snapshot.total,
        }
    else:
        timeout, cap = options.SERVER_IDLE_TIMEOUT, options.CONNECTION_LIMIT
        report.server = {"wait_timeout": timeout, "account_limit": cap}
        fix = (
            f"Set {terms.option('SERVER_IDLE_TIMEOUT')} and {terms.option('CONNECTION_LIMIT')} to "
            f"your host's figures, or run without {terms.offline_flag} where the server can be "
            "reached."
        )
        report.findings.append(findings.server_not_asked(who, reason, timeout, cap, fix))
    limit = float("inf")
    if timeout is not None:
        limit, clamped = idle_limit(timeout, options.TIMEOUT_MARGIN)
        if clamped:
            report.findings.append(
                findings.margin_clamped(
                    terms.option("TIMEOUT_MARGIN"), options.TIMEOUT_MARGIN, timeout, limit
                )
            )
    report.server["idle_limit"] = None if timeout is None else limit
    return Limits(timeout, cap, limit)


def budget(
    who: str,
    cap: int | None,
    workers: Workers,
    per_worker: int,
    per_worker_text: str,
    tasks: int,
    vendor: str,
    terms: Terms,
    *,
    waits: bool = False,
) -> list[Finding]:
    """E007/W008/W022/I019: connections the site can open at once against the account's cap.

    Each of ``workers`` may hold ``per_worker`` connections (``per_worker_text`` says why,
    e.g. "2 alias(es)"); ``tasks`` more are held by scheduled and always-on tasks. ``waits``:
    connections are held only while used and a refused connect waits in the line, so more
    than the cap is queueing (W022), not failing (E007).
    """
    if cap is None:
        return []
    if workers.number is None:
        return [findings.workers_unknown(who, cap, workers_fix(terms))]
    need = workers.number * per_worker + tasks
    breakdown = f"{workers.number} worker(s) from {workers.source} x {per_worker_text}"
    if tasks:
        breakdown += f" + {tasks} task connection(s)"
    wait = f" {terms.wait_at_cap}" if terms.wait_at_cap else ""
    allowed = max((cap - tasks) // per_worker, 0)
    if need > cap and waits:
        return [findings.budget_queues(who, need, breakdown, cap, queue_fix(allowed, terms))]
    if need > cap:
        fix = (
            f"Run at most {allowed} concurrent web worker(s) (processes x threads), or fewer "
            f"connections per worker or {terms.option('TASK_CONNECTIONS')} on this account; set "
            f"{terms.option('WORKERS')} to what you run.{wait}"
        )
        return [findings.budget_over_cap(who, need, breakdown, cap, fix, vendor)]
    if need == cap:
        fix = (
            "Leave one connection free: run one worker fewer, or keep consoles and scheduled "
            f"tasks off while the site is busy.{wait}"
        )
        return [findings.budget_at_cap(who, need, breakdown, cap, fix, vendor)]
    return []


def workers_fix(terms: Terms) -> str:
    """I019's fix, in the face's words."""
    return (
        f"Set {terms.option('WORKERS')} to the requests your web server serves at once "
        f"(processes x threads; detected under uWSGI){terms.workers_also}."
    )


def queue_fix(allowed: int, terms: Terms) -> str:
    """The fix of W022, in the face's words."""
    return (
        "Fine for bursts. For load that lasts, run at most "
        f"{allowed} concurrent web worker(s) (processes x threads), or keep "
        f"{terms.option('CONNECT_RETRY')} below your web server's request timeout so a "
        "request that waits too long gets its 503 first."
    )


def server_findings(
    who: str,
    facts: ServerFacts,
    snapshot: AccountSnapshot,
    timeout: int | None,
    terms: Terms,
    kill_flag: str,
) -> list[Finding]:
    """I012, I020 and W014: what the server's own settings and connections show."""
    found = []
    if facts.net_read_timeout is not None:
        fix = (
            f"Fetch large results in pages ({terms.paging}), "
            "yield_per) and limit what a query returns."
        )
        found.append(findings.net_read_timeout(who, facts.net_read_timeout, fix))
    if facts.vendor == "postgresql" and facts.idle_in_transaction_timeout is None:
        found.append(findings.idle_in_transaction_unlimited(who))
    if timeout is not None:
        fix = (
            "Find its owner (a console, a script that set its own wait_timeout) and close it, "
            f"or run `{terms.connections_command} {kill_flag}--kill-idle {timeout}`."
        )
        found.extend(
            findings.idle_past_timeout(who, c.id, c.host, c.idle_seconds, timeout, fix)
            for c in snapshot.connections
            if c.idle and c.idle_seconds > timeout
        )
    return found
