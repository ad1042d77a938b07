"""``python -m pa_dbhealth check|connections``: pa_dbhealth without a framework.

    DATABASE_URL=mysql://app:secret@host/app python -m pa_dbhealth check [--workers 2]
    python -m pa_dbhealth connections --url-file ~/.db-url [--kill-idle 300] [--dry-run]

The URL comes from ``--url``, ``--url-file`` or ``$DATABASE_URL`` (``command_line``). The
same findings, listings and exit codes as ``manage.py dbcheck`` / ``dbconnections``: 0
healthy, 1 findings at or above ``--fail-level``, 2 could not run. The local capped server
has its own entry point, ``python -m pa_dbhealth.sandbox``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pa_dbhealth import dburl
from pa_dbhealth.command_line import PROG, parser, url_text
from pa_dbhealth.core import cli_steps as commands
from pa_dbhealth.core import listings as connections
from pa_dbhealth.core import registry
from pa_dbhealth.core.audit import Audit, Terms, budget, judge_limits, server_findings
from pa_dbhealth.core.look import ask_server
from pa_dbhealth.core.options import Options
from pa_dbhealth.core.registry import holders as account_holders
from pa_dbhealth.core.server_support import installed_django_findings
from pa_dbhealth.core.workers import Workers

NAME = "default"  # what the output calls the one database
FLAGS = {
    "WORKERS": "--workers",
    "TASK_CONNECTIONS": "--task-connections",
    "TIMEOUT_MARGIN": "--timeout-margin",
}


@dataclass(frozen=True)
class FlagTerms(Terms):
    """Fixes that name this command's flags instead of PA_DBHEALTH's keys."""

    def option(self, key: str) -> str:
        return FLAGS.get(key, key)


TERMS = FlagTerms("", "python -m pa_dbhealth connections", "the URL")


def _write(text: str, style: str | None) -> None:
    print(text, flush=True)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def check(url: dburl.DatabaseURL, args: argparse.Namespace) -> Audit:
    """The audit of the URL's server and account."""
    options = Options(
        WORKERS=args.workers,
        TASK_CONNECTIONS=args.task_connections,
        TIMEOUT_MARGIN=args.timeout_margin,
    )
    who = repr(NAME)
    report = Audit(NAME, url.vendor)

    asked = ask_server(
        report,
        who,
        url.address,
        TERMS,
        lambda ask: dburl.look(url, ask, timeout=options.HEALTH_CONNECT_TIMEOUT),
        url.errors(),
    )
    if asked is None:
        return report
    facts, snapshot, reason = asked.facts, asked.snapshot, asked.reason
    port = str(url.port or "")
    limits = judge_limits(report, who, facts, snapshot, options, reason, TERMS, (url.host, port))
    workers = Workers(args.workers, "--workers") if args.workers else Workers(None, "unknown")
    report.findings += budget(
        who, limits.cap, workers, 1, "1 connection each", args.task_connections, url.vendor, TERMS
    )
    if facts is not None and snapshot is not None:
        report.findings += server_findings(who, facts, snapshot, limits.timeout, TERMS, "")
        report.findings += installed_django_findings(who, url.vendor, facts.version)
    return report


def connections_of(url: dburl.DatabaseURL, asked: commands.ListingAsked, format: str) -> None:
    options = Options()
    server, user = url.account
    where = registry.directory(None)  # $PA_DBHEALTH_REGISTRY_DIR, else the default

    def look_one(name: str) -> dict[str, Any]:
        return connections.listing(
            name,
            url.vendor,
            url.vendor,
            lambda ask: dburl.look(url, ask, timeout=options.HEALTH_CONNECT_TIMEOUT),
            **asked.kills(),
            cap=options.CONNECTION_LIMIT,
            errors=url.errors(),
            address=url.address,
            holders=lambda snapshot: account_holders.read(where, server, user, snapshot),
            account=(server, user) if url.vendor == "mysql" else None,
        )

    commands.connections([NAME], look_one, format, _write, watch=asked.watch, say=_say)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    text = url_text(args)
    asked = commands.ListingAsked.of(vars(args))
    if args.action == "connections" and (misuse := asked.misuse()) is not None:
        args.subparser.error(misuse)
    try:
        url = dburl.parse(text)
    except dburl.URLError as exc:
        args.subparser.error(str(exc))
    try:
        if args.action == "check":
            commands.check(
                [check(url, args)], (), args.format, args.fail_level, _write, name=PROG + " check"
            )
        else:
            connections_of(url, asked, args.format)
    except commands.CommandFailed as exc:
        _say(f"error: {exc}")
        return exc.code
    return 0


if __name__ == "__main__":
    sys.exit(main())
