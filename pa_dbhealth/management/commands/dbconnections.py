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

from django.core.management.base import CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, connections
from django.db import Error as DatabaseError

from pa_dbhealth import conf, holders
from pa_dbhealth.alias_look import look_at_alias
from pa_dbhealth.core import cli_steps as commands
from pa_dbhealth.core import listings, vendors
from pa_dbhealth.core.errors import server_address
from pa_dbhealth.core.registry.holders import AccountHolders
from pa_dbhealth.core.vendors import AccountSnapshot
from pa_dbhealth.management.base import ReportCommand


class Command(ReportCommand):
    help = (
        "List the database account's connections on the server (id, host, db, command, "
        "state, idle seconds) against its connection cap; optionally kill its idle ones."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--database",
            action="append",
            choices=tuple(connections),
            help='Database alias to look at; repeat for several (default: "default").',
        )
        commands.add_format_argument(parser)
        commands.add_listing_arguments(parser)

    def handle(self, *, database: list[str] | None, format: str, **options: Any) -> None:
        asked = commands.ListingAsked.of(options)
        misuse = asked.misuse()
        if misuse is not None:
            raise CommandError(misuse, returncode=2)
        aliases = list(dict.fromkeys(database or [DEFAULT_DB_ALIAS]))
        with self.exit_codes():
            commands.connections(
                aliases,
                lambda alias: _listing(alias, asked),
                format,
                self.write,
                watch=asked.watch,
                say=self.stderr.write,
                findings=holders.refused(),
            )


def _listing(alias: str, asked: commands.ListingAsked) -> dict[str, Any]:
    """One alias's listing (and kills), through a look at it."""
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
        **asked.kills(),
        cap=conf.get_settings().CONNECTION_LIMIT,
        errors=(DatabaseError,),
        address=server_address(db.get("HOST"), db.get("PORT")),
        holders=held,
        account=holders.server_of(db, "mysql") if connection.vendor == "mysql" else None,
    )
