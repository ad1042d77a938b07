"""``manage.py dbconnections``: who holds the account's connections, and freeing idle ones.

The table comes from one bounded look (``pa_dbhealth.look``) per alias: one round trip on
a connection the command opens for the look and closes again (also between ``--watch``
refreshes), so on a 3-connection account it holds one only while it looks. Each row is
joined with the registry of holders (``pa_dbhealth.holders``): which process holds it, or
that no process with pa_dbhealth says it does. When the cap is full it cannot open its
connection: it prints the registry's view at once (no connection needed), then retries for
``PA_DBHEALTH["CONNECT_RETRY"]`` seconds, saying so, then explains how to free a connection.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from argparse import ArgumentTypeError
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, connections
from django.db import Error as DatabaseError

from pa_dbhealth import conf, holders
from pa_dbhealth.core import render, render_holders, vendors
from pa_dbhealth.core.errors import Classified, Kind, classify, server_address
from pa_dbhealth.core.retry import connect_with_retry
from pa_dbhealth.look import LookTimedOut, look

WAY_OUT = (
    "Free a connection and run this again. On PythonAnywhere: reload the web app (Web tab, "
    "Reload) to close the web workers' connections, or stop the scheduled or always-on task "
    "that holds them (Tasks tab). The server also drops connections idle for longer than "
    "its wait_timeout (300 s on PythonAnywhere)."
)
MAX_SECONDS = 366 * 86400


def seconds(value: str) -> float:
    """A number of seconds from the command line: finite, 0 or more, at most a year."""
    try:
        number = float(value)
    except ValueError:
        raise ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not math.isfinite(number) or not 0 <= number <= MAX_SECONDS:
        raise ArgumentTypeError(f"{value!r}: seconds must be from 0 to {MAX_SECONDS}")
    return number


class Command(BaseCommand):
    help = (
        "List the database account's connections on the server (id, host, db, command, "
        "state, idle seconds) against its connection cap; optionally kill its idle ones."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--database",
            action="append",
            choices=tuple(connections),
            help='Database alias to look at; repeat for several (default: "default").',
        )
        parser.add_argument("--format", choices=("text", "json"), default="text")
        parser.add_argument(
            "--kill-idle",
            type=seconds,
            metavar="SECONDS",
            help="Kill the account's own connections idle (Sleep) for SECONDS or more, "
            "checked again right before each kill; never this command's own, never another "
            "account's, never one inside a transaction (see --include-transactions).",
        )
        parser.add_argument(
            "--include-transactions",
            action="store_true",
            help="With --kill-idle: also kill idle connections inside a transaction (their "
            "uncommitted work is rolled back) or whose transaction the server does not show "
            "(MySQL without the PROCESS privilege, as on PythonAnywhere).",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="With --kill-idle: show what would be killed, kill nothing.",
        )
        parser.add_argument(
            "--watch",
            type=seconds,
            metavar="SECONDS",
            help="Refresh every SECONDS until interrupted (Ctrl-C).",
        )

    def handle(
        self,
        *,
        database: list[str] | None,
        format: str,
        kill_idle: float | None,
        include_transactions: bool,
        dry_run: bool,
        watch: float | None,
        **options: Any,
    ) -> None:
        if (dry_run or include_transactions) and kill_idle is None:
            flag = "--dry-run" if dry_run else "--include-transactions"
            raise CommandError(f"{flag} goes with --kill-idle SECONDS", returncode=2)
        if watch is not None and watch <= 0:
            raise CommandError("--watch needs a number of seconds > 0", returncode=2)
        aliases = list(dict.fromkeys(database or [DEFAULT_DB_ALIAS]))
        kill = (kill_idle, include_transactions, dry_run)
        if watch is None:
            self._report(aliases, format, kill)
            return
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                if format == "text":
                    self.stdout.write(f"-- {datetime.now():%Y-%m-%d %H:%M:%S}")
                try:
                    self._report(aliases, format, kill)
                except CommandError as exc:  # keep watching: the cap may free up
                    self.stderr.write(str(exc))
                self.stdout.flush()
                time.sleep(watch)

    def _report(self, aliases: list[str], fmt: str, kill: tuple[float | None, bool, bool]) -> None:
        results: dict[str, dict[str, Any]] = {}
        gave_up: CapFull | None = None
        for alias in aliases:
            try:
                results[alias] = self._look(alias, fmt, *kill)
            except CapFull as exc:  # the registry's view stands in for the server's
                results[alias] = exc.view
                gave_up = gave_up or exc
        if fmt == "json":
            self.stdout.write(json.dumps({"databases": results}, indent=2))
        else:
            for alias, result in results.items():
                if result.get("source") != "registry":  # printed already, at once
                    self._write(render.listing_lines(alias, result))
        if gave_up is not None:
            raise gave_up.error

    def _write(self, lines: list[render.Line]) -> None:
        for line, style in lines:
            self.stdout.write(getattr(self.style, style)(line) if style else line)

    def _look(
        self,
        alias: str,
        fmt: str,
        kill_idle: float | None,
        include_transactions: bool,
        dry_run: bool,
    ) -> dict[str, Any]:
        connection = connections[alias]
        if not vendors.is_applicable(connection.vendor):
            note = vendors.not_applicable(connection.vendor, connection.display_name).note
            return {"applicable": False, "note": note, "limit": None, "connections": []}

        def question(raw: Any) -> tuple[vendors.AccountSnapshot, dict[str, Any]]:
            snapshot = vendors.account_snapshot(raw)
            result: dict[str, Any] = {}
            if kill_idle is not None:
                candidates = [
                    c.id
                    for c in snapshot.connections
                    if c.idle and not c.this_connection and c.idle_seconds >= kill_idle
                ]
                if dry_run:
                    result["would_kill"] = candidates
                else:
                    killed = vendors.kill_idle(
                        raw,
                        candidates,
                        min_idle=kill_idle,
                        include_transactions=include_transactions,
                    )
                    result.update(killed.as_dict())
            return snapshot, result

        try:
            snapshot, killing = self._with_wait(alias, question, fmt)
        except LookTimedOut as exc:
            raise CommandError(f"database {alias!r}: {exc}", returncode=2) from exc
        except DatabaseError as exc:
            found = classify(exc)
            where = ""
            if found.kind is Kind.UNREACHABLE:
                db = connection.settings_dict
                where = f" at {server_address(db.get('HOST'), db.get('PORT'))}"
            raise CommandError(f"database {alias!r}{where}: {found.short}", returncode=2) from exc
        held = holders.for_alias(alias, snapshot)
        return {**render.listing(connection.vendor, snapshot, held.by_id), **killing}

    def _with_wait(self, alias: str, question: Any, fmt: str) -> Any:
        """A look, tried again for up to ``CONNECT_RETRY`` seconds while the cap is full;
        meanwhile the registry's view, printed at once (text) or given when it gives up."""
        options = conf.get_settings()
        budget, cap = options.CONNECT_RETRY, options.CONNECTION_LIMIT
        start = time.monotonic()
        said: float | None = None
        view: dict[str, Any] | None = None

        def registry_view(classified: Classified) -> dict[str, Any]:
            nonlocal view
            if view is None:
                found = holders.for_alias(alias)
                reason = (
                    f"the account is at its cap of {cap} connections ({classified.code}), "
                    "so the server cannot be asked"
                )
                view = render_holders.registry_view(found.found, found.holders, reason)
                if fmt == "text":
                    self._write(render_holders.registry_lines(alias, view))
                    self.stdout.flush()
            return view

        def on_retry(classified: Classified, attempt: int, delay: float) -> None:
            nonlocal said
            now = time.monotonic()
            if said is None:
                registry_view(classified)
                self.stderr.write(
                    f"waiting: the account is at its cap of {cap} connections "
                    f"({classified.code}); retrying for up to {budget:g} s"
                )
            elif now - said < 1.0:  # once a second, not at every retry
                return
            else:
                self.stderr.write(f"still waiting ({now - start:.0f} s of {budget:g} s)")
            said = now

        try:
            return connect_with_retry(
                lambda: look(alias, question), budget=budget, on_retry=on_retry
            )
        except DatabaseError as exc:
            classified = classify(exc)
            if not classified.kind.is_cap:
                raise
            error = CommandError(
                f"gave up after {time.monotonic() - start:.1f} s: every connection the "
                f"account may hold is in use ({classified.short}), so this command cannot "
                f"open one to look. {WAY_OUT}",
                returncode=2,
            )
            raise CapFull(registry_view(classified), error) from exc


class CapFull(Exception):
    """The cap stayed full: the registry's view, and the error to end with."""

    def __init__(self, view: dict[str, Any], error: CommandError) -> None:
        super().__init__(str(error))
        self.view = view
        self.error = error
