"""Plain dataclasses the vendor probes return: faces print, serialise or compare them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


def query(
    connection: Any, sql: str, params: Sequence[Any] | None = None, *, fetch: bool = True
) -> list[tuple[Any, ...]]:
    """Run one parameterised statement on a DB-API connection; its rows (or [])."""
    cursor = connection.cursor()
    try:
        cursor.execute(sql, params)
        return [tuple(row) for row in cursor.fetchall()] if fetch else []
    finally:
        cursor.close()


@dataclass(frozen=True)
class ServerFacts:
    """What the server says about its limits, as seen by the account Django logs in with.

    ``applicable`` is False for backends without a server (SQLite) or that pa_dbhealth
    does not know; ``note`` then says why and every figure is None.
    """

    vendor: str  # "mysql", "postgresql", "sqlite", ... (Django's connection.vendor)
    flavour: str  # "MariaDB", "MySQL", "PostgreSQL", "SQLite", ...
    version: str = ""
    applicable: bool = True
    note: str = ""
    user: str = ""
    connection_id: int | None = None
    wait_timeout: int | None = None  # seconds of idleness after which the server drops a connection
    interactive_timeout: int | None = None
    net_read_timeout: int | None = None
    idle_in_transaction_timeout: int | None = None
    max_connections: int | None = None  # server-wide
    account_limit: int | None = None  # connections this account may hold; None = no per-account cap

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AccountConnection:
    """One connection of the account, as the server lists it."""

    id: int
    user: str
    host: str
    db: str | None
    command: str  # MySQL's COMMAND ("Sleep", "Query", ...) or PostgreSQL's state ("idle", ...)
    state: str
    seconds: int  # seconds in the current command/state
    idle: bool  # waiting for the client: "Sleep" / "idle"
    this_connection: bool  # the connection the probe itself ran on
    in_transaction: bool | None = None  # None: the server does not say (MySQL without PROCESS)

    @classmethod
    def from_row(
        cls, row: Sequence[Any], *, idle_command: str, in_transaction: bool | None = None
    ) -> AccountConnection:
        """From a vendor's row ``(id, user, host, db, command, state, seconds, is this one)``;
        ``idle_command`` is what the server calls a connection waiting for its client."""
        return cls(
            id=int(row[0]),
            user=str(row[1]),
            host=str(row[2] or ""),
            db=row[3],
            command=str(row[4]),
            state=str(row[5] or ""),
            seconds=int(row[6] or 0),
            idle=row[4] == idle_command,
            this_connection=bool(row[7]),
            in_transaction=in_transaction,
        )

    @property
    def idle_seconds(self) -> int:
        return self.seconds if self.idle else 0

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["idle_seconds"] = self.idle_seconds
        return data


@dataclass(frozen=True)
class AccountSnapshot:
    """The account's connections and the two figures needed to judge them, in one round trip."""

    account_limit: int | None
    wait_timeout: int | None
    connections: list[AccountConnection] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.connections)

    @property
    def sleeping(self) -> int:
        return sum(1 for c in self.connections if c.idle)

    @property
    def active(self) -> int:
        return self.total - self.sleeping

    @property
    def headroom(self) -> int | None:
        return None if self.account_limit is None else self.account_limit - self.total

    @property
    def longest_idle_seconds(self) -> int:
        return max((c.idle_seconds for c in self.connections), default=0)


@dataclass
class KillResult:
    """What a kill of idle connections did: the ids killed, and why each other one was spared
    ("gone", "busy", "in transaction", "transaction unknown")."""

    killed: list[int] = field(default_factory=list)
    spared: dict[int, str] = field(default_factory=dict)

    def skip(self, conn_id: int, reason: str) -> None:
        self.spared[int(conn_id)] = reason

    def as_dict(self) -> dict[str, Any]:
        return {"killed": self.killed, "spared": {str(k): v for k, v in self.spared.items()}}
