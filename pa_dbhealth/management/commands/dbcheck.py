"""``manage.py dbcheck``: audit every database alias against its live server."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

from pa_dbhealth.audit import AliasAudit, audit_alias, site_findings
from pa_dbhealth.findings import Finding, Level

LEVELS = {level.label: level for level in Level}
# What each server calls the timeout after which it drops an idle connection.
IDLE_TIMEOUT_NAMES = {"mysql": "wait_timeout", "postgresql": "idle_session_timeout"}


class Command(BaseCommand):
    help = (
        "Audit database settings against the live server's idle timeout and the account's "
        "connection cap. Exit code 0: nothing at or above --fail-level; 1: findings; 2: misuse."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--database",
            choices=tuple(connections),
            help="Audit only this alias (default: every alias).",
        )
        parser.add_argument("--format", choices=("text", "json"), default="text")
        parser.add_argument(
            "--fail-level",
            choices=tuple(LEVELS),
            default="error",
            help="Exit with 1 when a finding is at or above this level (default: error).",
        )
        parser.add_argument(
            "--offline",
            action="store_true",
            help="Do not connect: use PA_DBHEALTH's SERVER_IDLE_TIMEOUT and CONNECTION_LIMIT.",
        )

    def handle(
        self,
        *args: Any,
        database: str | None,
        format: str,
        fail_level: str,
        offline: bool,
        **options: Any,
    ) -> None:
        aliases = [database] if database else list(connections)
        site = site_findings()
        reports = []
        for alias in aliases:
            report = audit_alias(alias, offline=offline)
            report.findings.extend(site)
            reports.append(report)
        if format == "json":
            body = {"databases": {r.alias: r.as_dict() for r in reports}}
            self.stdout.write(json.dumps(body, indent=2, default=str))
        else:
            for report in reports:
                self._write_report(report)
        failing = [f for r in reports for f in r.at_or_above(LEVELS[fail_level])]
        if failing:
            raise CommandError(f"{len(failing)} finding(s) at or above {fail_level}.", returncode=1)

    def _write_report(self, report: AliasAudit) -> None:
        self.stdout.write(self.style.MIGRATE_HEADING(self._heading(report)))
        for line in self._server_lines(report):
            self.stdout.write(f"  {line}")
        findings = report.sorted_findings()
        if not findings:
            self.stdout.write(self.style.SUCCESS("  No findings."))
        for finding in findings:
            self._write_finding(finding)
        self.stdout.write("")

    def _heading(self, report: AliasAudit) -> str:
        server = report.server
        if report.source != "server":
            return f"{report.alias} ({report.vendor}; figures from PA_DBHEALTH, server not asked)"
        where = f"{server['host']}:{server['port']}" if server.get("host") else "default host"
        user = server.get("user") or "?"
        return f"{report.alias}: {server['flavour']} {server['version']} at {where} as {user}"

    def _server_lines(self, report: AliasAudit) -> list[str]:
        server = report.server
        if "flavour" in server and not server.get("applicable", True):
            return []
        lines = []
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
        lines.append(", ".join(timeouts))
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

    def _write_finding(self, finding: Finding) -> None:
        style = {
            Level.ERROR: self.style.ERROR,
            Level.WARNING: self.style.WARNING,
            Level.INFO: self.style.NOTICE,
        }[finding.level]
        self.stdout.write(style(f"  {finding.level.name:<7} {finding.id}: {finding.message}"))
        self.stdout.write(f"          fix: {finding.hint}")
