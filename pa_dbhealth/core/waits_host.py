"""The wait figures host-wide: each process publishes its own file (at most every
:data:`PUBLISH_EVERY` seconds, and at exit) and a scrape, in whichever process answers it,
sums the files of this host's live processes. A dead process's last figures are folded
into ``retired.json`` (under a file lock) before its file is removed, so no counter goes
down. How many wait now comes live from the account lines (System V), plus the waits of
processes outside any line; the longest current wait is up to a second behind.
"""

from __future__ import annotations

import atexit
import fcntl
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from pa_dbhealth.core import line as lines
from pa_dbhealth.core import private_files, registry, waits
from pa_dbhealth.core import waits_files as files
from pa_dbhealth.core.registry.files import file_name
from pa_dbhealth.core.registry.process import process_alive, this_host, this_process

logger = logging.getLogger("pa_dbhealth.waits")

PUBLISH_EVERY = 1.0  # seconds
_lock = threading.Lock()
_state: dict[str, Any] = {
    "setting": None,
    "where": None,
    "written": 0.0,
    "timer": None,
    "dirty": False,  # counted since the last write
}


def use(setting: Any) -> None:
    """Publish beside the registry that ``REGISTRY_DIR = setting`` names (a face's)."""
    if setting != _state["setting"] or _state["where"] is None:
        _state["setting"] = setting
        _state["where"] = files.directory_beside(registry.directory(setting))


def _own() -> dict[str, Any]:
    host, pid, started, _ = this_process()
    return {"host": host, "pid": pid, "started": started, "lines": lines.known(), **waits.figures()}


def publish() -> None:
    """Write this process's file now (never raises)."""
    where: Path | None = _state["where"]
    with _lock:
        _state["written"], _state["timer"], _state["dirty"] = time.monotonic(), None, False
    if where is None:
        return
    try:
        with private_files.private_directory(where, create=True) as dir_fd:
            name = file_name(this_host(), os.getpid())
            private_files.write_atomically(dir_fd, name, files.encode(_own()))
    except OSError as exc:
        logger.debug("pa_dbhealth: wait figures not written in %s: %s", where, exc)


def publish_soon() -> None:
    """After an event: now when the last write is a second old, else once a timer says."""
    if _state["where"] is None:
        return
    with _lock:
        _state["dirty"] = True
        late = time.monotonic() - _state["written"]
        if _state["timer"] is not None:
            return
        if late < PUBLISH_EVERY:
            timer = threading.Timer(PUBLISH_EVERY - late, publish)
            timer.daemon = True
            _state["timer"] = timer
            timer.start()
            return
    publish()


def _fold(dir_fd: int, name: str) -> None:
    """Add a dead process's counters into the retired total and remove its file."""
    lock = os.open("retired.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600, dir_fd=dir_fd)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = private_files.read_private(dir_fd, name, files.MAX_BYTES)
        found = None if data is None else files.parse(data)
        if found is not None:
            retired = _retired(dir_fd)
            files.add_counts(retired, found)
            private_files.write_atomically(dir_fd, files.RETIRED, files.encode(retired))
        private_files.remove(dir_fd, name)
    finally:
        os.close(lock)  # releases the lock


def _retired(dir_fd: int) -> dict[str, Any]:
    data = private_files.read_private(dir_fd, files.RETIRED, files.MAX_BYTES)
    found = None if data is None else files.parse(data)
    return files.empty() if found is None else found


def _others(where: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The live processes' figures (this one's aside) and the retired total."""
    mine = file_name(this_host(), os.getpid())
    live = []
    with private_files.private_directory(where, create=True) as dir_fd:
        for name in private_files.names(dir_fd):
            if name in (mine, files.RETIRED) or not name.endswith(".json"):
                continue
            data = private_files.read_private(dir_fd, name, files.MAX_BYTES)
            found = None if data is None else files.parse(data)
            if found is None or name != file_name(this_host(), found["pid"]):
                continue
            if process_alive(found["pid"], found["started"]):
                live.append(found)
            else:
                _fold(dir_fd, name)
        return live, _retired(dir_fd)


def host_figures(setting: Any) -> dict[str, Any]:
    """The figures of every live process of this host with the retired ones, and the
    gauges: ``waiting`` now and ``longest_wait_seconds``."""
    use(setting)
    publish()
    own = _own()
    live, total = [own], files.empty()
    where = _state["where"]
    if where is not None:
        try:
            others, total = _others(where)
            live += others
        except OSError as exc:
            logger.debug("pa_dbhealth: wait figures in %s not read: %s", where, exc)
    accounts = {tuple(pair) for found in live for pair in found["lines"]}
    waiting = sum(found["waiting_outside_line"] for found in live)
    for server, account in sorted(accounts):
        line = lines.open_line(server, account, None)
        waiting += line.waiting if line is not None else 0
    oldest = [found["oldest_wait_since"] for found in live if found["oldest_wait_since"]]
    for found in live:
        files.add_counts(total, found)
    longest = max(0.0, time.time() - min(oldest)) if oldest and waiting else 0.0
    sums = {key: total[key] for key in ("counters", "buckets", "beyond", "count", "sum")}
    return {**sums, "waiting": waiting, "longest_wait_seconds": round(longest, 3)}


def _at_exit() -> None:
    """The last figures, when something was counted since they were last written."""
    if _state["dirty"]:
        publish()


def _after_fork() -> None:
    waits.reset()
    _state.update(written=0.0, timer=None, dirty=False)


waits.listen(publish_soon)
atexit.register(_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
