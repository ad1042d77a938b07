"""The status page's content, for every face: what a person sees when the site is down.

A face probes each database once (``health.probe``: one bounded look, a single connect
attempt), reads the registry of holders (a directory, no database), takes the audit's
findings, and builds a :class:`Page` with :func:`database`; ``core.page.html`` writes it as
HTML. At a full cap the probe is refused at once and the page shows what the registry
knows instead of the server's list.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pa_dbhealth.core import registry
from pa_dbhealth.core.findings import Finding
from pa_dbhealth.core.health import CAP_REACHED, DatabaseHealth, Status
from pa_dbhealth.core.line import cap_in_message
from pa_dbhealth.core.registry import Found, Holder
from pa_dbhealth.core.vendors import AccountSnapshot

SERVER = "server"  # the rows are the server's list, each joined with its holder
REGISTRY = "registry"  # the server could not be asked: the rows are the registry's entries


@dataclass(frozen=True)
class Row:
    """One connection of the account: the server's row, or a registry entry alone."""

    id: int | None
    holder: dict[str, Any] | None  # ``registry.Holder.as_dict()``; None: no entry explains it
    command: str = ""  # the server's ("Sleep", "Query"); "" when only the registry speaks
    seconds: int | None = None  # seconds in that command (the server's)
    idle: bool = False  # waiting for its client (the server's "Sleep", "idle")
    this_page: bool = False  # the connection the page itself looked through


@dataclass(frozen=True)
class Database:
    """One database (a Django alias, a Flask engine) as the page shows it."""

    name: str
    status: Status
    reasons: tuple[str, ...] = ()
    source: str = SERVER
    used: int | None = None  # connections in use (the registry's count when it speaks)
    cap: int | None = None
    problem: str | None = None  # why the server could not be asked
    rows: tuple[Row, ...] = ()
    findings: tuple[Finding, ...] = ()
    registry_problem: str | None = None
    note: str = ""  # why pa_dbhealth has nothing to say about it (SQLite, ...)
    applicable: bool = True
    settings_only: bool = False  # the audit did not ask the server
    at_cap: bool = False  # the server refused the page's look: every slot is in use

    @property
    def named(self) -> int:
        """How many connections the registry names (its entries)."""
        return sum(1 for row in self.rows if row.holder is not None)


@dataclass(frozen=True)
class Page:
    """The whole page: the overall status and, for a visitor with access, each database."""

    status: Status
    databases: tuple[Database, ...] = ()


def database(
    result: DatabaseHealth,
    found: Found,
    holders: Sequence[Holder],
    findings: Iterable[Finding],
    cap: int,
    *,
    settings_only: bool = False,
) -> Database:
    """One database's section from its probe's ``result``, the registry (``found``) and its
    entries for the database's server and account (``holders``), and the audit's
    ``findings`` (``settings_only``: judged without asking the server). ``cap`` (the
    ``CONNECTION_LIMIT`` option) stands in for the server's cap when it could not be asked."""
    shown = tuple(sorted(findings, key=lambda f: (-f.level, f.id)))
    if not result.applicable:
        return Database(result.alias, result.status, note=result.note, applicable=False)
    if result.snapshot is not None:
        return _from_server(result, result.snapshot, found, holders, shown, settings_only)
    return _from_registry(result, found, holders, shown, cap, settings_only)


def _from_server(
    result: DatabaseHealth,
    snapshot: AccountSnapshot,
    found: Found,
    holders: Sequence[Holder],
    shown: tuple[Finding, ...],
    settings_only: bool,
) -> Database:
    """The section when the server answered: its list of connections, each joined with the
    registry's entry that explains it."""
    by_id = registry.join(snapshot.connections, holders)
    rows = tuple(
        Row(
            row.id,
            None if row.id not in by_id else by_id[row.id].as_dict(),
            row.command,
            row.seconds,
            row.idle,
            row.this_connection,
        )
        for row in snapshot.connections
    )
    return Database(
        result.alias,
        result.status,
        result.reasons,
        SERVER,
        snapshot.total,
        snapshot.account_limit,
        rows=rows,
        findings=shown,
        registry_problem=found.problem,
        settings_only=settings_only,
    )


def _from_registry(
    result: DatabaseHealth,
    found: Found,
    holders: Sequence[Holder],
    shown: tuple[Finding, ...],
    cap: int,
    settings_only: bool,
) -> Database:
    """The section when the server could not be asked: the registry's entries, and at a
    full cap (the look refused) every slot counted as in use."""
    problem = result.error if result.detail is None else f"{result.error}: {result.detail}"
    at_cap = result.error == CAP_REACHED
    if at_cap:  # refused: all of the cap is in use, whoever holds it
        cap = cap_in_message(result.detail or "") or cap
    return Database(
        result.alias,
        result.status,
        result.reasons,
        REGISTRY,
        cap if at_cap else len(holders),
        cap,
        problem,
        tuple(Row(h.connection.id, h.as_dict()) for h in holders),
        shown,
        found.problem,
        settings_only=settings_only,
        at_cap=at_cap,
    )
