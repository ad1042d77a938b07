"""What the commands print, for every face: the connection listing and the audit.

Each renderer returns ``(text, style)`` lines; ``style`` names one of Django's
``self.style`` roles (``SUCCESS``, ``WARNING``, ``ERROR``, ``NOTICE``, ``MIGRATE_HEADING``)
or is None, and each face paints it its own way (Django's styles, click's colours). JSON
goes out unstyled, as built by :func:`listing` and ``Audit.as_dict``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pa_dbhealth.core.audit import Audit
from pa_dbhealth.core.findings import Finding, Level
from pa_dbhealth.core.registry import Holder
from pa_dbhealth.core.render_holders import holder_line, leak_lines
from pa_dbhealth.core.vendors import AccountSnapshot

Line = tuple[str, "str | None"]

# What each server calls the timeout after which it drops an idle connection.
IDLE_TIMEOUT_NAMES = {"mysql": "wait_timeout", "postgresql": "idle_session_timeout"}
LEVEL_STYLES = {Level.ERROR: "ERROR", Level.WARNING: "WARNING", Level.INFO: "NOTICE"}
SPARED_WHY = {
    "gone": "ended on its own",
    "busy": "no longer idle",
    "in transaction": "inside a transaction",
    "transaction unknown": "the server does not show its transaction: --include-transactions",
}


def listing(
    vendor: str, snapshot: AccountSnapshot, holders: dict[int, Holder] | None = None
) -> dict[str, Any]:
    """The account's connections as the commands' JSON gives them; with the registry's
    ``holders`` (by connection id), each gains ``holder`` (null: no entry explains it)."""
    rows = []
    for connection in snapshot.connections:
        row = connection.as_dict()
        if holders is not None:
            holder = holders.get(connection.id)
            row["holder"] = None if holder is None else holder.as_dict()
        rows.append(row)
    return {
        "vendor": vendor,
        "limit": snapshot.account_limit,
        "wait_timeout": snapshot.wait_timeout,
        "total": snapshot.total,
        "active": snapshot.active,
        "sleeping": snapshot.sleeping,
        "headroom": snapshot.headroom,
        "connections": rows,
    }


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        ("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))).rstrip()
        for row in rows
    ]


def _note(
    row: dict[str, Any], killed: set[int], would_kill: set[int], spared: dict[str, str]
) -> str:
    if row["this_connection"]:
        return "<- this one"
    if row["id"] in killed:
        return "<- killed"
    if row["id"] in would_kill:
        return "<- would kill"
    if str(row["id"]) in spared:
        return f"<- spared: {SPARED_WHY.get(spared[str(row['id'])], spared[str(row['id'])])}"
    return ""


def listing_lines(alias: str, result: dict[str, Any]) -> list[Line]:
    """The listing of one database as text lines."""
    if not result.get("applicable", True):
        return [(f"{alias}: does not apply. {result['note']}", None)]
    return [
        _listing_heading(alias, result),
        *_connection_lines(result),
        *_listing_footer(result),
    ]


def _listing_heading(alias: str, result: dict[str, Any]) -> Line:
    """``alias (vendor): N of CAP connections, F free``, styled by how many are free."""
    limit, headroom = result["limit"], result["headroom"]
    heading = f"{alias} ({result['vendor']}): "
    heading += (
        f"{result['total']} of {limit} connections"
        if limit is not None
        else f"{result['total']} connections"
    )
    style = "SUCCESS"
    if headroom is not None:
        heading += f", {headroom} free"
        style = "ERROR" if headroom <= 0 else "WARNING" if headroom == 1 else "SUCCESS"
    return (heading, style)


def _connection_lines(result: dict[str, Any]) -> list[Line]:
    """The table of connections, each row followed by its holder when the registry was read."""
    killed, would_kill = set(result.get("killed", ())), set(result.get("would_kill", ()))
    spared: dict[str, str] = result.get("spared", {})
    rows = [("id", "host", "db", "command", "state", "idle s", "")]
    rows += [
        (
            str(row["id"]),
            row["host"],
            row["db"] or "",
            row["command"],
            row["state"],
            str(row["idle_seconds"]),
            _note(row, killed, would_kill, spared),
        )
        for row in result["connections"]
    ]
    table = _table(rows)
    lines: list[Line] = [(table[0], None)]
    for line, row in zip(table[1:], result["connections"], strict=True):
        lines.append((line, None))
        if "holder" in row and not row["this_connection"]:
            lines.append((f"      {holder_line(row['holder'])}", None))
    return lines


def _listing_footer(result: dict[str, Any]) -> list[Line]:
    """Below the table: the counts and the idle timeout, what a kill did or would do, and
    the probable leaks the registry names."""
    timeout = result["wait_timeout"]
    drops = (
        f"the server drops connections idle for {timeout} s"
        if timeout
        else "the server does not drop idle connections"
    )
    lines: list[Line] = [
        (f"  {result['active']} active, {result['sleeping']} sleeping; {drops}", None)
    ]
    if "would_kill" in result:
        ids = ", ".join(map(str, result["would_kill"])) or "none"
        lines.append((f"  would kill (dry run): {ids}", None))
    if "killed" in result:
        ids = ", ".join(map(str, result["killed"])) or "none"
        lines.append((f"  killed: {ids}", "WARNING"))
    spared: dict[str, str] = result.get("spared", {})
    if spared:
        shown = ", ".join(f"{i} ({SPARED_WHY.get(why, why)})" for i, why in spared.items())
        lines.append((f"  spared: {shown}", None))
    held = [(row["id"], row["holder"]) for row in result["connections"] if row.get("holder")]
    lines += [(f"  {line}", "WARNING") for line in leak_lines(held)]
    return lines


def _heading(report: Audit) -> str:
    server = report.server
    if report.source != "server":
        if any(f.id in ("pa_dbhealth.E011", "pa_dbhealth.E018") for f in report.findings):
            return f"{report.alias} ({report.vendor}; the server could not be asked)"
        return f"{report.alias} ({report.vendor}; figures from the settings, server not asked)"
    where = f"{server['host']}:{server['port']}" if server.get("host") else "default host"
    user = server.get("user") or "?"
    return f"{report.alias}: {server['flavour']} {server['version']} at {where} as {user}"


def _server_lines(report: Audit) -> list[str]:
    server = report.server
    if not server or ("flavour" in server and not server.get("applicable", True)):
        return []
    timeouts = [
        f"{name} {server[key]} s"
        for key, name in (
            ("wait_timeout", IDLE_TIMEOUT_NAMES.get(report.vendor, "idle timeout")),
            ("interactive_timeout", "interactive_timeout"),
            ("net_read_timeout", "net_read_timeout"),
            ("idle_in_transaction_timeout", "idle_in_transaction_session_timeout"),
        )
        if server.get(key) is not None
    ]
    if server.get("wait_timeout") is None:
        timeouts.insert(0, "no idle timeout")
    lines = [", ".join(timeouts)]
    cap = server.get("account_limit")
    cap_text = f"account cap {cap} connections" if cap else "no per-account cap"
    if "connections" in server:
        cap_text += f", {server['connections']} open now (this check's included)"
    if server.get("max_connections"):
        cap_text += f"; server max_connections {server['max_connections']}"
    lines.append(cap_text)
    if server.get("idle_limit") is not None:
        lines.append(f"connections count as stale after {server['idle_limit']:g} s idle")
    return lines


def finding_lines(finding: Finding) -> list[Line]:
    return [
        (f"  {finding.level.name:<7} {finding.id}: {finding.message}", LEVEL_STYLES[finding.level]),
        (f"          fix: {finding.hint}", None),
    ]


def audit_lines(report: Audit) -> list[Line]:
    """One database's audit as text lines: heading, the server's figures, the findings."""
    lines: list[Line] = [(_heading(report), "MIGRATE_HEADING")]
    lines += [(f"  {line}", None) for line in _server_lines(report)]
    found = report.sorted_findings()
    if not found:
        lines.append(("  No findings.", "SUCCESS"))
    for finding in found:
        lines += finding_lines(finding)
    lines.append(("", None))
    return lines


def summary(found: Sequence[Finding], fail_level: Level, name: str) -> Line:
    """The last line, as Django's ``check`` ends: the command's ``name``, then how many
    findings of each level."""
    counts = {level: sum(1 for f in found if f.level == level) for level in Level}
    if not found:
        return (f"{name}: no findings.", "SUCCESS")
    parts = [
        f"{counts[level]} {level.label}{'s' if counts[level] != 1 else ''}"
        for level in sorted(Level, reverse=True)
        if counts[level]
    ]
    failing = sum(1 for f in found if f.level >= fail_level)
    style = "ERROR" if failing else "SUCCESS"
    verdict = (
        f"{failing} at or above {fail_level.label}"
        if failing
        else f"none at or above {fail_level.label}"
    )
    return (f"{name}: {', '.join(parts)} ({verdict}).", style)
