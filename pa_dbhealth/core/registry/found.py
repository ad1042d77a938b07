"""What a reader finds in the registry: each live process's entry, the holders of one
account's connections, joined with the server's list; and the pruning of other hosts'
entries the server contradicts."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pa_dbhealth.core import private_files
from pa_dbhealth.core.registry.files import HeldConnection, ProcessEntry
from pa_dbhealth.core.registry.process import this_host
from pa_dbhealth.core.registry.reader import read_entries
from pa_dbhealth.core.vendors import AccountConnection

logger = logging.getLogger("pa_dbhealth.registry")

ABSENT_AFTER = 60.0  # seconds: another host's entry absent from the server's list is pruned


@dataclass(frozen=True)
class Holder:
    """One connection of the account and the process that holds it, as the registry says."""

    process: ProcessEntry
    connection: HeldConnection

    @property
    def probable_leak(self) -> bool:
        return self.connection.leak is not None

    def as_dict(self) -> dict[str, Any]:
        """What the listings give as a connection's ``holder``."""
        held, process = self.connection, self.process
        return {
            "host": process.host,
            "pid": process.pid,
            "program": process.program,
            "thread": held.thread,
            "name": held.name,
            "opened_at": round(held.opened_at, 3),
            "last_used": None if held.last_used is None else round(held.last_used, 3),
            "origin": held.caller,
            "stack": held.stack,
            "probable_leak": self.probable_leak,
            "leak": None if held.leak is None else held.leak.as_dict(),
            "written_at": round(process.written_at, 3),
        }


@dataclass(frozen=True)
class Found:
    """What a reader found: the live processes' entries, or why there are none."""

    directory: Path | None
    processes: tuple[ProcessEntry, ...] = ()
    problem: str | None = None  # "turned off", a directory that is not private, ...
    left_out: int = 0  # entries the read's budget left unread (registry.reader)

    def holders(self, server: str, account: str) -> list[Holder]:
        """The connections to ``server`` as ``account``, oldest first."""
        found = [
            Holder(process, held)
            for process in self.processes
            for held in process.connections
            if held.server == server and held.account == account
        ]
        return sorted(found, key=lambda h: h.connection.opened_at)


def read(where: Path | None, *, prune: bool = True) -> Found:
    """Every process's entry in the registry at ``where``, within a read's budget (this
    host's first: :mod:`pa_dbhealth.core.registry.reader`); files of processes of this host
    that are gone, and stale junk, are removed (``prune``). Never raises: a registry that
    cannot be read is an empty one, with the reason in ``problem``."""
    if where is None:
        return Found(None, problem="the registry is turned off (REGISTRY_DIR = False)")
    try:
        with private_files.private_directory(where, create=False) as dir_fd:
            done = read_entries(dir_fd, prune=prune)
    except FileNotFoundError:
        return Found(where)
    except OSError as exc:
        logger.debug("pa_dbhealth: registry %s not read: %s", where, exc)
        return Found(where, problem=f"the registry at {where} cannot be read: {exc}")
    return Found(where, tuple(done.entries), left_out=done.left_out)


def join(
    rows: Iterable[AccountConnection], holders: Iterable[Holder], *, now: float | None = None
) -> dict[int, Holder]:
    """The holder of each of the server's rows that an entry explains, by connection id.

    An entry matches a row by the server's id for the connection, when it could have been
    opened by then (opened before the row's idle time began: PostgreSQL reuses pids); the
    most recently written entry wins when two processes name the same id (a connection
    inherited across a fork)."""
    now = time.time() if now is None else now
    by_id: dict[int, Holder] = {}
    for holder in sorted(holders, key=lambda h: h.process.written_at):
        if holder.connection.id is not None:
            by_id[holder.connection.id] = holder
    matched = {}
    for row in rows:
        named = by_id.get(row.id)
        if named is not None and named.connection.opened_at <= now - row.idle_seconds + 5:
            matched[row.id] = named
    return matched


def prune_absent(
    found: Found, server: str, account: str, listed: Iterable[int], *, now: float | None = None
) -> list[ProcessEntry]:
    """Remove the files of other hosts' processes that the server contradicts: every
    connection they name is to ``server`` as ``account``, none is on the server's list
    (``listed``), and they were written more than :data:`ABSENT_AFTER` seconds ago. (A pid
    says nothing about another host's processes.) Returns the entries removed."""
    if found.directory is None:
        return []
    now = time.time() if now is None else now
    on_list = set(listed)
    host = this_host()
    gone = [
        process
        for process in found.processes
        if process.host != host
        and process.connections
        and now - process.written_at > ABSENT_AFTER
        and all(h.server == server and h.account == account for h in process.connections)
        and not any(h.id in on_list for h in process.connections)
    ]
    if not gone:
        return []
    try:
        with private_files.private_directory(found.directory, create=False) as dir_fd:
            for process in gone:
                private_files.remove(dir_fd, process.file)
    except OSError as exc:
        logger.debug("pa_dbhealth: registry %s not pruned: %s", found.directory, exc)
        return []
    return gone
