"""``manage.py dbcheck``: audit every database alias against its live server."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser
from django.db import connections

from pa_dbhealth import behind, conf
from pa_dbhealth.audit import audit_alias, site_findings
from pa_dbhealth.checks import asgi_findings, settings_findings
from pa_dbhealth.core import cli_steps as commands
from pa_dbhealth.management.base import ReportCommand


class Command(ReportCommand):
    help = (
        "Audit database settings against the live server's idle timeout and the account's "
        "connection cap. Exit code 0: nothing at or above --fail-level; 1: findings; 2: misuse."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--database",
            choices=tuple(connections),
            help="Audit only this alias (default: every alias).",
        )
        commands.add_format_argument(parser)
        commands.add_fail_level_argument(parser)
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
        site += behind.pin_findings()  # what the site's processes ran that pins a multiplexer
        reports = [audit_alias(alias, offline=offline) for alias in aliases]
        with self.exit_codes():
            commands.check(reports, site, format, fail_level, self.write, name="dbcheck")
