"""The ``dbcheck`` and ``dbconnections`` commands' output and exit codes, for the faces
without Django (``flask dbcheck``, ``python -m pa_dbhealth check``, ...).

A face gathers the audits or the listings and passes a ``write(text, style)`` that paints
``core.render``'s styles its own way; JSON goes out unstyled. Exit codes: 0 healthy,
1 findings at or above the fail level, 2 could not run (:class:`CommandFailed`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pa_dbhealth.core import render, render_holders
from pa_dbhealth.core.audit import Audit
from pa_dbhealth.core.findings import Finding, Level

LEVELS = {level.label: level for level in Level}
MAX_SECONDS = 366 * 86400

Write = Callable[[str, "str | None"], None]


CAP_FULL = 3  # exit code: --kill-idle could not run, the cap is full (the registry answered)


class CommandFailed(Exception):
    """The command ends with ``code`` (1: findings; 2: could not run) and this message."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def seconds(value: str) -> float:
    """A number of seconds from the command line: finite, 0 or more, at most a year."""
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a number of seconds") from None
    if not math.isfinite(number) or not 0 <= number <= MAX_SECONDS:
        raise ValueError(f"{value!r}: seconds must be from 0 to {MAX_SECONDS}")
    return number


@dataclass(frozen=True)
class ListingAsked:
    """What a ``dbconnections`` command line asks: which idle connections to kill, and how
    often to list again. Every face reads it from its parsed options with :meth:`of`."""

    kill_idle: float | None = None
    include_transactions: bool = False
    dry_run: bool = False
    watch: float | None = None

    @classmethod
    def of(cls, options: Mapping[str, Any]) -> ListingAsked:
        return cls(
            options.get("kill_idle"),
            bool(options.get("include_transactions")),
            bool(options.get("dry_run")),
            options.get("watch"),
        )

    def misuse(self) -> str | None:
        """What is wrong with the command line, in one line, or None."""
        if (self.dry_run or self.include_transactions) and self.kill_idle is None:
            flag = "--dry-run" if self.dry_run else "--include-transactions"
            return f"{flag} goes with --kill-idle SECONDS"
        if self.watch is not None and self.watch <= 0:
            return "--watch needs a number of seconds > 0"
        return None

    def kills(self) -> dict[str, Any]:
        """The keyword arguments of ``core.listings.listing`` that say what to kill."""
        return {
            "kill_idle": self.kill_idle,
            "include_transactions": self.include_transactions,
            "dry_run": self.dry_run,
        }


def argument_seconds(value: str) -> float:
    """:func:`seconds` as an ``argparse`` type: a bad value is a one-line usage error."""
    try:
        return seconds(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# The help of the options every face's commands share (argparse's and click's alike).
FAIL_LEVEL_HELP = "Exit with 1 when a finding is at or above this level (default: error)."
FORMAT_HELP = "text for people (default), json for scripts."
KILL_IDLE_HELP = (
    "Kill the account's own connections idle (Sleep) for SECONDS or more, checked again "
    "right before each kill; never this command's own, never another account's, never one "
    "inside a transaction (see --include-transactions)."
)
INCLUDE_TRANSACTIONS_HELP = (
    "With --kill-idle: also kill idle connections inside a transaction (their uncommitted "
    "work is rolled back) or whose transaction the server does not show (MySQL without the "
    "PROCESS privilege, as on PythonAnywhere)."
)
DRY_RUN_HELP = "With --kill-idle: show what would be killed, kill nothing."
WATCH_HELP = "List again every SECONDS until interrupted (Ctrl-C)."


def add_format_argument(parser: argparse.ArgumentParser) -> None:
    """``--format text|json`` of every command."""
    parser.add_argument("--format", choices=("text", "json"), default="text", help=FORMAT_HELP)


def add_fail_level_argument(parser: argparse.ArgumentParser) -> None:
    """``--fail-level`` of a check command."""
    parser.add_argument(
        "--fail-level", choices=tuple(LEVELS), default="error", help=FAIL_LEVEL_HELP
    )


def add_listing_arguments(parser: argparse.ArgumentParser) -> None:
    """``--kill-idle``, ``--include-transactions``, ``--dry-run`` and ``--watch`` of a
    connections command (read back with :meth:`ListingAsked.of`)."""
    seconds_ = argument_seconds
    parser.add_argument("--kill-idle", type=seconds_, metavar="SECONDS", help=KILL_IDLE_HELP)
    parser.add_argument(
        "--include-transactions", action="store_true", help=INCLUDE_TRANSACTIONS_HELP
    )
    parser.add_argument("--dry-run", action="store_true", help=DRY_RUN_HELP)
    parser.add_argument("--watch", type=seconds_, metavar="SECONDS", help=WATCH_HELP)


def check(
    reports: Sequence[Audit],
    site: Iterable[Finding],
    fmt: str,
    fail_level: str,
    write: Write,
    *,
    name: str,
) -> None:
    """Print the audits (``site`` findings added to each), ending with a summary line that
    starts with the command's ``name`` (``"flask dbcheck"``), and raise
    :class:`CommandFailed` (code 1) when a finding is at or above ``fail_level``."""
    site = list(site)
    for report in reports:
        report.findings.extend(site)
    found = list(dict.fromkeys(f for r in reports for f in r.findings))
    if fmt == "json":
        body = {"databases": {r.alias: r.as_dict() for r in reports}}
        write(json.dumps(body, indent=2, default=str), None)
    else:
        for report in reports:
            for text, style in render.audit_lines(report):
                write(text, style)
        write(*render.summary(found, LEVELS[fail_level], name))
    failing = [f for f in found if f.level >= LEVELS[fail_level]]
    if failing:
        raise CommandFailed(f"{len(failing)} finding(s) at or above {fail_level}.", 1)


def connections(
    names: Sequence[str],
    look: Callable[[str], dict[str, Any]],
    fmt: str,
    write: Write,
    *,
    watch: float | None = None,
    say: Callable[[str], None] = print,
    findings: Sequence[Finding] = (),
) -> None:
    """Print ``look(name)`` of each database once, or every ``watch`` seconds until Ctrl-C
    (then a failed look is said and watching goes on), then ``findings`` about the listing
    itself (E028: the registry of holders cannot be used)."""
    if watch is None:
        _connections(names, look, fmt, write, findings)
        return
    with contextlib.suppress(KeyboardInterrupt):
        while True:
            if fmt == "text":
                write(f"-- {datetime.now():%Y-%m-%d %H:%M:%S}", None)
            try:
                _connections(names, look, fmt, write, findings)
            except CommandFailed as exc:  # keep watching: the cap may free up
                say(str(exc))
            time.sleep(watch)


def _connections(
    names: Sequence[str],
    look: Callable[[str], dict[str, Any]],
    fmt: str,
    write: Write,
    findings: Sequence[Finding],
) -> None:
    results = {name: look(name) for name in names}
    if fmt == "json":
        about = [finding.as_dict() for finding in findings]
        write(json.dumps({"databases": results, "findings": about}, indent=2), None)
    else:
        for name, result in results.items():
            if result.get("source") == "registry":  # the server refused the look: at the cap
                lines = render_holders.registry_lines(name, result)
            else:
                lines = render.listing_lines(name, result)
            for text, style in lines:
                write(text, style)
        for text, style in (line for finding in findings for line in render.finding_lines(finding)):
            write(text, style)
    not_done = [f"{name}: {r['not_done']}" for name, r in results.items() if r.get("not_done")]
    if not_done:
        raise CommandFailed("; ".join(not_done), CAP_FULL)
