"""Who holds one account's connections on one server, as the registry of holders says:
what every face's listing (``dbconnections``, ``flask dbconnections``, ``python -m
pa_dbhealth connections``), cap report and health view reads, with or without the server's
list of the account's connections."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pa_dbhealth.core import findings, registry
from pa_dbhealth.core.findings import Finding
from pa_dbhealth.core.registry import Found, Holder
from pa_dbhealth.core.vendors import AccountSnapshot

__all__ = ["AccountHolders", "read", "refused"]


@dataclass
class AccountHolders:
    """What the registry says about one account's connections to one server."""

    found: Found
    holders: list[Holder]  # every entry for the server and account
    by_id: dict[int, Holder] = field(default_factory=dict)  # joined with the server's list
    untracked: list[int] = field(default_factory=list)  # rows no entry explains

    @property
    def leaks(self) -> list[Holder]:
        shown = self.by_id.values() if self.by_id or self.untracked else self.holders
        return [holder for holder in shown if holder.probable_leak]


def read(
    where: Path | None, server: str, account: str, snapshot: AccountSnapshot | None = None
) -> AccountHolders:
    """The registry's entries at ``where`` for ``server`` and ``account``; with the server's
    list (``snapshot``), joined to its rows, and other hosts' entries it contradicts pruned."""
    found = registry.read(where)
    result = AccountHolders(found, found.holders(server, account))
    if snapshot is not None:
        rows = snapshot.connections
        result.by_id = registry.join(rows, result.holders)
        result.untracked = [
            row.id for row in rows if row.id not in result.by_id and not row.this_connection
        ]
        registry.prune_absent(found, server, account, [row.id for row in rows])
    return result


def refused(where: Path | None, setting: str) -> list[Finding]:
    """E028 when the registry at ``where`` cannot be used, in the words of the face's
    ``setting`` (``PA_DBHEALTH['REGISTRY_DIR']``); nothing when it can, or is turned off."""
    why = registry.refusal(where)
    if why is None or where is None:
        return []
    default = registry.DEFAULT_DIRECTORY
    suggested = None if where == default.expanduser() else str(default)
    return [findings.registry_refused(str(where), why, setting, suggested)]
