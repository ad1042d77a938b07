"""``manage.py dbconnections``: who holds the account's connections, and freeing idle ones.

The table comes from one round trip (``vendors.account_snapshot``) on the command's own
connection, which it opens for the look and closes again (also between ``--watch``
refreshes), so on a 3-connection account it holds one only while it looks. When the cap is
full it cannot open that one: it retries for ``PA_DBHEALTH["CONNECT_RETRY"]`` seconds,
saying so, then explains how to free a connection.
"""

from __future__ import annotations

import contextlib
import json
import time
from argparse import ArgumentTypeError
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, connections
from django.db import Error as DatabaseError
from django.db.backends.base.base import BaseDatabaseWrapper

from pa_dbhealth import conf, vendors
from pa_dbhealth.errors import Classified, Kind, classify, server_address
from pa_dbhealth.retry import connect_with_retry, single_attempt

WAY_OUT = (
    "Free a connection and run this again. On PythonAnywhere: reload the web app (Web tab, "
    "Reload) to close the web workers' connections, or stop the scheduled or always-on task "
    "that holds them (Tasks tab). The server also drops connections idle for longer than "
    "its wait_timeout (300 s on PythonAnywhere)."
)


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if seconds < 0:
        raise ArgumentTypeError(f"{value!r}: seconds cannot be negative")
    return seconds


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
            type=_seconds,
            metavar="SECONDS",
            help="Kill the account's own connections idle (Sleep) for SECONDS or more; "
            "never this command's own and never another account's.",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="With --kill-idle: show what would be killed, kill nothing.",
        )
        parser.add_argument(
            "--watch",
            type=_seconds,
            metavar="SECONDS",
            help="Refresh every SECONDS until interrupted (Ctrl-C).",
        )

    def handle(
        self,
        *,
        database: list[str] | None,
        format: str,
        kill_idle: float | None,
        dry_run: bool,
        watch: float | None,
        **options: Any,
    ) -> None:
        if dry_run and kill_idle is None:
            raise CommandError("--dry-run goes with --kill-idle SECONDS", returncode=2)
        if watch is not None and watch <= 0:
            raise CommandError("--watch needs a number of seconds > 0", returncode=2)
        aliases = list(dict.fromkeys(database or [DEFAULT_DB_ALIAS]))
        if watch is None:
            self._report(aliases, format, kill_idle, dry_run)
            return
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                if format == "text":
                    self.stdout.write(f"-- {datetime.now():%Y-%m-%d %H:%M:%S}")
                try:
                    self._report(aliases, format, kill_idle, dry_run)
                except CommandError as exc:  # keep watching: the cap may free up
                    self.stderr.write(str(exc))
                self.stdout.flush()
                time.sleep(watch)

    def _report(self, aliases: list[str], fmt: str, kill_idle: float | None, dry_run: bool) -> None:
        results = {alias: self._look(alias, kill_idle, dry_run) for alias in aliases}
        if fmt == "json":
            self.stdout.write(json.dumps({"databases": results}, indent=2))
            return
        for alias, result in results.items():
            self._write_text(alias, result)

    def _look(self, alias: str, kill_idle: float | None, dry_run: bool) -> dict[str, Any]:
        connection = connections[alias]
        if not vendors.is_applicable(connection):
            note = vendors.server_facts(connection).note  # asks no server
            return {"applicable": False, "note": note, "limit": None, "connections": []}
        opened = connection.connection is None
        try:
            if opened:
                self._connect(connection)
            snapshot = vendors.account_snapshot(connection)
            result: dict[str, Any] = {
                "vendor": connection.vendor,
                "limit": snapshot.account_limit,
                "wait_timeout": snapshot.wait_timeout,
                "total": snapshot.total,
                "active": snapshot.active,
                "sleeping": snapshot.sleeping,
                "headroom": snapshot.headroom,
                "connections": [_row(c) for c in snapshot.connections],
            }
            if kill_idle is not None:
                candidates = [
                    c.id
                    for c in snapshot.connections
                    if c.idle and not c.this_connection and c.idle_seconds >= kill_idle
                ]
                if dry_run:
                    result["would_kill"] = candidates
                else:
                    result["killed"] = vendors.kill_connections(
                        connection, [int(i) for i in candidates]
                    )
            return result
        except DatabaseError as exc:
            found = classify(exc)
            where = f" at {server_address(connection.settings_dict)}"
            where = where if found.kind is Kind.UNREACHABLE else ""
            raise CommandError(f"database {alias!r}{where}: {found.short}", returncode=2) from exc
        finally:
            if opened and not connection.in_atomic_block:
                with contextlib.suppress(DatabaseError):
                    connection.close()

    def _connect(self, connection: BaseDatabaseWrapper) -> None:
        """Open the connection, waiting up to ``CONNECT_RETRY`` seconds while the cap is full."""
        budget = conf.get_settings().CONNECT_RETRY
        cap = conf.get_settings().CONNECTION_LIMIT
        start = time.monotonic()
        said: float | None = None

        def on_retry(classified: Classified, attempt: int, delay: float) -> None:
            nonlocal said
            now = time.monotonic()
            if said is None:
                self.stderr.write(
                    f"waiting: the account is at its cap of {cap} connections "
                    f"({classified.code}); retrying for up to {budget:g} s"
                )
            elif now - said < 1.0:  # once a second, not at every retry
                return
            else:
                self.stderr.write(f"still waiting ({now - start:.0f} s of {budget:g} s)")
            said = now

        def attempt() -> None:
            # This loop does the waiting and says so; a retrying backend must not wait
            # silently inside each attempt (and double the budget).
            with single_attempt():
                connection.ensure_connection()

        try:
            connect_with_retry(attempt, budget=budget, on_retry=on_retry)
        except DatabaseError as exc:
            classified = classify(exc)
            if not classified.kind.is_cap:
                raise
            raise CommandError(
                f"gave up after {time.monotonic() - start:.1f} s: every connection the "
                f"account may hold is in use ({classified.short}), so this command cannot "
                f"open one to look. {WAY_OUT}",
                returncode=2,
            ) from exc

    def _write_text(self, alias: str, result: dict[str, Any]) -> None:
        if not result.get("applicable", True):
            self.stdout.write(f"{alias}: does not apply. {result['note']}")
            return
        rows = result["connections"]
        limit = result["limit"]
        cap = f"{result['total']} of {limit}" if limit is not None else f"{result['total']}"
        heading = f"{alias} ({result['vendor']}): {cap} connections"
        style = self.style.SUCCESS
        if result["headroom"] is not None:
            heading += f", {result['headroom']} free"
            if result["headroom"] <= 0:
                style = self.style.ERROR
            elif result["headroom"] == 1:
                style = self.style.WARNING
        self.stdout.write(style(heading))
        killed, would_kill = set(result.get("killed", ())), set(result.get("would_kill", ()))
        table = [("id", "host", "db", "command", "state", "idle s", "")]
        for row in rows:
            table.append(
                (
                    str(row["id"]),
                    row["host"],
                    row["db"] or "",
                    row["command"],
                    row["state"],
                    str(row["idle_seconds"]),
                    _note(row, killed, would_kill),
                )
            )
        widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
        for line in table:
            cells = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
            self.stdout.write(("  " + "  ".join(cells)).rstrip())
        timeout = result["wait_timeout"]
        drops = (
            f"the server drops connections idle for {timeout} s"
            if timeout
            else "the server does not drop idle connections"
        )
        self.stdout.write(f"  {result['active']} active, {result['sleeping']} sleeping; {drops}")
        if "would_kill" in result:
            ids = ", ".join(map(str, result["would_kill"])) or "none"
            self.stdout.write(f"  would kill (dry run): {ids}")
        if "killed" in result:
            ids = ", ".join(map(str, result["killed"])) or "none"
            self.stdout.write(self.style.WARNING(f"  killed: {ids}"))


def _row(connection: vendors.AccountConnection) -> dict[str, Any]:
    return {
        "id": connection.id,
        "host": connection.host,
        "db": connection.db,
        "command": connection.command,
        "state": connection.state,
        "idle_seconds": connection.idle_seconds,
        "this_connection": connection.this_connection,
    }


def _note(row: dict[str, Any], killed: set[int], would_kill: set[int]) -> str:
    if row["this_connection"]:
        return "<- this one"
    if row["id"] in killed:
        return "<- killed"
    if row["id"] in would_kill:
        return "<- would kill"
    return ""
