"""Backends without a server to ask (SQLite) or that pa_dbhealth does not know."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.backends.base.base import BaseDatabaseWrapper

from pa_dbhealth.vendors.types import AccountSnapshot, ServerFacts

_NOTES = {
    "sqlite": "SQLite is a file, not a server: it has no connection cap or idle timeout, "
    "so pa_dbhealth has nothing to check here.",
}


def server_facts(connection: BaseDatabaseWrapper) -> ServerFacts:
    vendor = connection.vendor
    note = _NOTES.get(
        vendor, f"pa_dbhealth does not know how to ask a {connection.display_name} server."
    )
    return ServerFacts(vendor=vendor, flavour=connection.display_name, applicable=False, note=note)


def account_snapshot(connection: BaseDatabaseWrapper) -> AccountSnapshot:
    return AccountSnapshot(account_limit=None, wait_timeout=None, connections=[])


def kill_connections(connection: BaseDatabaseWrapper, ids: Iterable[int]) -> list[int]:
    return []
