"""Server introspection: the only place in pa_dbhealth that writes SQL.

One function per question, dispatched on ``connection.vendor``; each costs one round
trip (``kill_connections``: one more per id) and returns the dataclasses in ``types``.
The probes run on the connection they are given and do not close it.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import ModuleType

from django.db.backends.base.base import BaseDatabaseWrapper

from pa_dbhealth.vendors import mysql, other, postgresql
from pa_dbhealth.vendors.types import AccountConnection, AccountSnapshot, ServerFacts

__all__ = [
    "AccountConnection",
    "AccountSnapshot",
    "ServerFacts",
    "account_snapshot",
    "is_applicable",
    "kill_connections",
    "server_facts",
]

_MODULES: dict[str, ModuleType] = {"mysql": mysql, "postgresql": postgresql}


def _module(connection: BaseDatabaseWrapper) -> ModuleType:
    return _MODULES.get(connection.vendor, other)


def is_applicable(connection: BaseDatabaseWrapper) -> bool:
    """Whether the backend has a server with caps and timeouts pa_dbhealth understands."""
    return connection.vendor in _MODULES


def server_facts(connection: BaseDatabaseWrapper) -> ServerFacts:
    """The server's timeouts and limits as seen by this connection's account."""
    facts: ServerFacts = _module(connection).server_facts(connection)
    return facts


def account_snapshot(connection: BaseDatabaseWrapper) -> AccountSnapshot:
    """The account's connections now (this one included), with its cap and idle timeout."""
    snapshot: AccountSnapshot = _module(connection).account_snapshot(connection)
    return snapshot


def kill_connections(connection: BaseDatabaseWrapper, ids: Iterable[int]) -> list[int]:
    """Kill those of ``ids`` that are the account's own connections, never this one.

    Returns the ids actually killed; ids of other accounts, of this connection, or that
    are gone already are skipped.
    """
    snapshot = account_snapshot(connection)
    own = {c.id for c in snapshot.connections if not c.this_connection}
    wanted = [int(i) for i in ids if int(i) in own]
    killed: list[int] = _module(connection).kill_connections(connection, wanted)
    return killed
