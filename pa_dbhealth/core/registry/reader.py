"""Reading the registry's directory in bounded time, whatever was planted in it.

Every page view, listing and cap report reads the registry, so a read has a budget
(:data:`BUDGET_SECONDS`, :data:`BUDGET_BYTES`, :data:`MAX_ENTRIES` entries) and spends it on
what is most likely real:

1. Names are sorted out before anything is read. A name that is not ``<host>-<pid>.json``
   is not an entry: it costs nothing and counts for nothing. A file of this host whose
   process is gone is removed at once, unread.
2. This host's entries of live processes are read first, then other hosts' entries, the
   smallest first (a real entry names a few connections; a 250 KB one is rare), the newest
   first among equals.
3. A file that is malformed, oversized, not a regular file or not this user's is skipped
   without counting against :data:`MAX_ENTRIES`, and is removed once it is stale (older than
   :data:`STALE_JUNK`) and this user's; so is a writer's temporary file left behind.
4. What the budget leaves unread is counted, so a listing can say so.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import time
from dataclasses import dataclass, field

from pa_dbhealth.core import private_files
from pa_dbhealth.core.registry.files import ProcessEntry, parse, safe_host
from pa_dbhealth.core.registry.process import process_alive, this_host

MAX_ENTRIES = 1000  # entries one read takes
MAX_BYTES = 256 * 1024  # a larger file is not an entry
BUDGET_BYTES = 2 * 1024 * 1024  # bytes one read parses at most
BUDGET_SECONDS = 0.2  # seconds one read spends on files at most
STALE_TEMPORARY = 3600.0  # seconds: a writer's leftover temporary file is removed
STALE_JUNK = 600.0  # seconds: a file that is no entry is removed (a writer renames at once)

_ENTRY_NAME = re.compile(r"(?P<host>[A-Za-z0-9._-]{1,64})-(?P<pid>[1-9][0-9]{0,9})\.json")


@dataclass
class Read:
    """The entries one read took, and how many files that looked like entries it left."""

    entries: list[ProcessEntry] = field(default_factory=list)
    left_out: int = 0  # over the budget: not read


@dataclass(frozen=True)
class _Candidate:
    name: str
    size: int
    modified: float


def read_entries(dir_fd: int, *, prune: bool) -> Read:
    """The directory's entries within the budget; with ``prune``, dead and stale files
    removed (see the module)."""
    now = time.time()
    own, others = _sort_out(dir_fd, prune, now)
    others.sort(key=lambda c: (c.size, -c.modified))
    result = Read()
    started, spent = time.monotonic(), 0
    for candidate in own + others:
        if (
            len(result.entries) >= MAX_ENTRIES
            or spent + candidate.size > BUDGET_BYTES
            or time.monotonic() - started > BUDGET_SECONDS
        ):
            result.left_out += 1
            continue
        spent += candidate.size
        entry = _entry(dir_fd, candidate)
        if entry is None:
            _remove_if_stale(dir_fd, candidate.name, candidate.modified, STALE_JUNK, prune, now)
        elif entry.host == this_host() and not process_alive(entry.pid, entry.started):
            if prune:
                private_files.remove(dir_fd, candidate.name)  # a new process got its pid
        else:
            result.entries.append(entry)
    return result


def _sort_out(dir_fd: int, prune: bool, now: float) -> tuple[list[_Candidate], list[_Candidate]]:
    """This host's live entries and other hosts' entries, by name and metadata alone."""
    host = safe_host(this_host())
    own: list[_Candidate] = []
    others: list[_Candidate] = []
    with os.scandir(dir_fd) as found:
        for item in found:
            try:
                info = item.stat(follow_symlinks=False)
            except OSError:
                continue  # gone meanwhile
            name = item.name
            if name.startswith(".") and name.endswith(".tmp"):
                _remove_if_stale(dir_fd, name, info.st_mtime, STALE_TEMPORARY, prune, now)
                continue
            match = _ENTRY_NAME.fullmatch(name)
            if match is None or not _plausible(info):
                if name.endswith(".json"):
                    _remove_if_stale(dir_fd, name, info.st_mtime, STALE_JUNK, prune, now)
                continue
            if match["host"] == host and not process_alive(int(match["pid"]), None):
                if prune:
                    private_files.remove(dir_fd, name)
                continue
            candidate = _Candidate(name, info.st_size, info.st_mtime)
            (own if match["host"] == host else others).append(candidate)
    own.sort(key=lambda c: c.name)
    return own, others


def _plausible(info: os.stat_result) -> bool:
    """A regular file of this user, not larger than an entry may be."""
    return stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid() and info.st_size <= MAX_BYTES


def _entry(dir_fd: int, candidate: _Candidate) -> ProcessEntry | None:
    data = private_files.read_private(dir_fd, candidate.name, MAX_BYTES)
    return None if data is None else parse(data, candidate.name)


def _remove_if_stale(
    dir_fd: int, name: str, modified: float, after: float, prune: bool, now: float
) -> None:
    """Remove ``name`` when it is older than ``after`` seconds and this user's (what another
    user left in a private directory is not touched: the directory's owner sees it)."""
    if not prune or now - modified <= after:
        return
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return
    if info.st_uid == os.geteuid() and not stat.S_ISDIR(info.st_mode):
        with contextlib.suppress(OSError):
            private_files.remove(dir_fd, name)
