"""``manage.py dbcheck``: audit every database alias against its live server."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

from pa_dbhealth import conf
from pa_dbhealth.audit import audit_alias, site_findings
from pa_dbhealth.checks import asgi_findings, settings_findings
from pa_dbhealth.core import render
from pa_dbhealth.core.findings import Level

LEVELS = {level.label: level for level in Level}


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
        # PA_DBHEALTH's own mistakes come first: the audit would otherwise judge by defaults.
        site = settings_findings(conf.problems()) + site_findings() + asgi_findings()
        reports = []
        for alias in aliases:
            report = audit_alias(alias, offline=offline)
            report.findings.extend(site)
            reports.append(report)
        found = list(dict.fromkeys(f for r in reports for f in r.findings))
        if format == "json":
            body = {"databases": {r.alias: r.as_dict() for r in reports}}
            self.stdout.write(json.dumps(body, indent=2, default=str))
        else:
            for report in reports:
                self._write(render.audit_lines(report))
            self._write([render.summary(found, LEVELS[fail_level])])
        failing = [f for f in found if f.level >= LEVELS[fail_level]]
        if failing:
            raise CommandError(f"{len(failing)} finding(s) at or above {fail_level}.", returncode=1)

    def _write(self, lines: list[render.Line]) -> None:
        for text, style in lines:
            self.stdout.write(getattr(self.style, style)(text) if style else text)
