"""Findings about a site behind a multiplexer (PgBouncer and the like; docs/outgrowing.md)."""

from __future__ import annotations

from pa_dbhealth.core.findings.base import Finding, Level


def prepared_statements_unsupported(who: str, pooler: str, fix: str) -> Finding:
    return Finding(
        "pa_dbhealth.E034",
        Level.ERROR,
        f"{who} prepares statements on the server, but it connects through {pooler}, which "
        "hands each transaction to any of its server connections: a statement prepared on "
        "one is unknown on the next ('prepared statement ... does not exist').",
        fix,
    )


def pins_connections(site: str, what: str, count: int, breaks: str, fix: str) -> Finding:
    return Finding(
        "pa_dbhealth.W035",
        Level.WARNING,
        f"This app would pin {breaks} connections at {site} ({what}, {count} time(s) since "
        "its processes started): behind it, a server connection stays with one client "
        "(or, in PgBouncer's transaction mode, the next transaction runs on another).",
        f"{fix[:1].upper()}{fix[1:]}.",
    )


def behind_multiplexer(who: str, pooler: str, evidence: str, pool: str, kept: str) -> Finding:
    return Finding(
        "pa_dbhealth.I036",
        Level.INFO,
        f"{who} connects through {pooler} ({evidence}). {pool} The connections pa_dbhealth "
        f"counts, {kept} and pool sizes are client connections to the pooler; the socket "
        "check cannot see the server's idle kill, so keep connections fresh by age.",
        "Size the pooler's pool to the server's cap; see docs/outgrowing.md.",
    )


def server_side_cursors_behind_pooler(who: str, pooler: str, mode: str, fix: str) -> Finding:
    return Finding(
        "pa_dbhealth.W037",
        Level.WARNING,
        f"{who} uses server-side cursors (QuerySet.iterator()) but connects through {pooler} "
        f"{mode}: a cursor declared in one transaction is gone in the next "
        "('cursor ... does not exist').",
        fix,
    )
