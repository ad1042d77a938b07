"""Where the app pins connections: each rule broken, once per code site, with a count.

A face's execute hook calls :func:`note` for each statement :func:`pins.suspect` lets
through; nothing is kept per statement, only ``(site, rule, what, vendor) -> count``, for
at most ``MAX_SITES`` sites. Each process writes its sites to a file of its own (when a site
is new, or every ``SAVE_EVERY`` seconds while pins go on), beside the registry of holders,
so ``dbcheck`` run from a console sees what the web app's processes saw.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pa_dbhealth.core import pins, private_files

MAX_SITES = 200
SAVE_EVERY = 10.0  # seconds
KEEP_FOR = 7 * 86400  # a process's file older than this is not read
FILE_LIMIT = 256 * 1024
_PREFIX = "pins-"
_TEXTS = ("site", "rule", "what", "vendor")


@dataclass(frozen=True)
class PinSite:
    """One code site that broke one rule, and how often."""

    site: str  # "path/to/file.py:88 in function"
    rule: str  # the rule's name ("GET_LOCK")
    what: str  # what in the statement ("SET foreign_key_checks")
    vendor: str  # "mysql" or "postgresql"
    count: int

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.site, self.rule, self.what, self.vendor)


_lock = threading.Lock()
_counts: dict[tuple[str, str, str, str], int] = {}
_saved_at = 0.0
_directory: Path | None = None


def note(sql: str, vendor: str, locate: Callable[[], tuple[str | None, Path | None]]) -> None:
    """Count ``sql`` if it breaks a rule, at the site ``locate()`` gives (None: pa_dbhealth's
    own or a framework's statement, not counted), saved to the directory it gives when due.
    ``locate`` is called only for a statement that breaks a rule: finding the site costs
    more than classifying, and most suspects break none (Django's own ``SET`` on each new
    connection). Never raises."""
    found = pins.classify(sql, vendor)
    if found is None:
        return
    site, directory = locate()
    if site is None:
        return
    rule, what = found
    key = (site, rule.name, what, vendor)
    global _saved_at, _directory
    with _lock:
        new = key not in _counts
        if new and len(_counts) >= MAX_SITES:
            return
        _counts[key] = _counts.get(key, 0) + 1
        now = time.monotonic()
        due = new or now - _saved_at >= SAVE_EVERY
        if due:
            _saved_at = now
        if _directory is None and directory is not None:
            atexit.register(_save_at_exit)  # the counts since the last save
        _directory = directory
    if due:
        _save_quietly(directory)


def _save_at_exit() -> None:
    with _lock:
        directory = _directory
    _save_quietly(directory)


def _save_quietly(directory: Path | None) -> None:
    if directory is not None and _counts:
        with contextlib.suppress(OSError, ValueError):
            _save(directory)


def sites() -> list[PinSite]:
    """This process's sites, most frequent first."""
    with _lock:
        items = list(_counts.items())
    return _sorted(PinSite(*key, count=count) for key, count in items)


def forget() -> None:
    """Forget this process's sites (and its file): for tests."""
    global _saved_at
    with _lock:
        _counts.clear()
        _saved_at = 0.0
        directory = _directory
    if directory is not None:
        with contextlib.suppress(OSError), _open(directory, create=False) as fd:
            private_files.remove(fd, _file_name())


def pins_directory(registry_directory: Path | None) -> Path | None:
    """Where the pins files live: beside the registry of holders (None: turned off)."""
    if registry_directory is None:
        return None
    return registry_directory.with_name(registry_directory.name + "-pins")


def _file_name() -> str:
    host = "".join(c if c.isalnum() or c in "-." else "_" for c in socket.gethostname())
    return f"{_PREFIX}{host[:64]}-{os.getpid()}.json"


def _open(directory: Path, *, create: bool) -> Any:
    return private_files.private_directory(directory, create=create)


def _save(directory: Path) -> None:
    body = {"pid": os.getpid(), "sites": [asdict(s) for s in sites()]}
    with _open(directory, create=True) as fd:
        private_files.write_atomically(fd, _file_name(), json.dumps(body).encode())


def read_all(directory: Path | None) -> list[PinSite]:
    """Every process's sites (this one's from memory), counts of one site summed."""
    totals: dict[tuple[str, str, str, str], int] = {}
    mine = _file_name()
    if directory is not None:
        with contextlib.suppress(OSError), _open(directory, create=False) as fd:
            for name in private_files.names(fd):
                if name == mine or not name.startswith(_PREFIX) or not name.endswith(".json"):
                    continue
                modified = private_files.modified_at(fd, name)
                if modified is None or time.time() - modified > KEEP_FOR:
                    continue
                for site in _parse(private_files.read_private(fd, name, FILE_LIMIT)):
                    totals[site.key] = totals.get(site.key, 0) + site.count
    for site in sites():
        totals[site.key] = totals.get(site.key, 0) + site.count
    return _sorted(PinSite(*key, count=count) for key, count in totals.items())


def _parse(data: bytes | None) -> list[PinSite]:
    """A file's sites; whatever is malformed is left out."""
    try:
        entries = json.loads(data or b"")["sites"]
    except (ValueError, TypeError, KeyError):
        return []
    found = []
    for entry in entries if isinstance(entries, list) else []:
        with contextlib.suppress(TypeError, KeyError, ValueError, AttributeError):
            site, rule, what, vendor = (str(entry[k])[:500] for k in _TEXTS)
            count = entry["count"]
            if isinstance(count, int) and not isinstance(count, bool) and count > 0:
                found.append(PinSite(site, rule, what, vendor, count))
    return found


def _sorted(items: Any) -> list[PinSite]:
    return sorted(items, key=lambda s: (-s.count, s.site, s.what))


def applying(found: list[PinSite], multiplexers: tuple[str, ...]) -> list[tuple[PinSite, str]]:
    """The sites that break a rule of one of ``multiplexers``, each with the names of those
    it breaks ("ProxySQL and MySQL Router")."""
    rules = {rule.name: rule for rule in pins.RULES}
    chosen = []
    for site in found:
        rule = rules.get(site.rule)
        if rule is None:
            continue
        family = pins.FAMILIES.get(site.vendor, frozenset())
        broken = [m for m in multiplexers if m in rule.breaks and m in family]
        if broken:
            chosen.append((site, _and([pins.NAMES[m] for m in broken])))
    return chosen


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
