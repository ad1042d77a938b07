"""``manage.py dbconnections``: who holds the account's connections, and freeing idle ones.

The table comes from one bounded look (``pa_dbhealth.alias_look``) per alias: one round trip on
a connection the command opens for the look and closes again (also between ``--watch``
refreshes), so on a 3-connection account it holds one only while it looks. Each row is
joined with the registry of holders (``pa_dbhealth.holders``): which process holds it, or
that no process with pa_dbhealth says it does. When the cap is full it cannot open its
connection: it answers at once from the registry (no connection needed), counted against
the cap ("3 of 3 in use ...: 2 named below, 1 not tracked"), and says how to free one.
The steps and the output are every face's (``core.listings``, ``core.cli_steps``).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, connections
from django.db import Error as DatabaseError

from pa_dbhealth import conf, holders
from pa_dbhealth.alias_look import look_at_alias
from pa_dbhealth.core import cli_steps as commands
from pa_dbhealth.core import listings, vendors
from pa_dbhealth.core.errors import server_address
from pa_dbhealth.core.registry.holders import AccountHolders
from pa_dbhealth.core.vendors import AccountSnapshot

seconds = commands.argument_seconds


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
        misuse = commands.listing_misuse(kill_idle, include_transactions, dry_run, watch)
        if misuse is not None:
            raise CommandError(misuse, returncode=2)
        aliases = list(dict.fromkeys(database or [DEFAULT_DB_ALIAS]))
        settings = conf.get_settings()

        def look_one(alias: str) -> dict[str, Any]:
            connection = connections[alias]
            db = connection.settings_dict
            # display_name asks a MySQL server for its version: only where nothing is asked
            shown = connection.vendor
            if not vendors.is_applicable(shown):
                shown = connection.display_name

            def held(snapshot: AccountSnapshot | None) -> AccountHolders:
                return holders.for_alias(alias, snapshot)

            return listings.listing(
                alias,
                connection.vendor,
                shown,
                lambda ask: look_at_alias(alias, ask),
                kill_idle=kill_idle,
                include_transactions=include_transactions,
                dry_run=dry_run,
                cap=settings.CONNECTION_LIMIT,
                errors=(DatabaseError,),
                address=server_address(db.get("HOST"), db.get("PORT")),
                holders=held,
                account=holders.server_of(db, "mysql") if connection.vendor == "mysql" else None,
            )

        try:
            commands.connections(
                aliases,
                look_one,
                format,
                self._write,
                watch=watch,
                say=self.stderr.write,
                findings=holders.refused(),
            )
        except commands.CommandFailed as exc:
            raise CommandError(str(exc), returncode=exc.code) from None

    def _write(self, text: str, style: str | None) -> None:
        self.stdout.write(getattr(self.style, style)(text) if style else text)
        self.stdout.flush()
