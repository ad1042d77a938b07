"""This process's file in the registry of holders: written when its connections change,
removed when it has none or exits. See :mod:`pa_dbhealth.core.registry` for the API."""

from __future__ import annotations

import atexit
import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pa_dbhealth.core import private_files
from pa_dbhealth.core.registry.files import FORMAT, HeldConnection, file_name
from pa_dbhealth.core.registry.process import this_host, this_process

logger = logging.getLogger("pa_dbhealth.registry")

REFRESH_EVERY = 5.0  # seconds: a change of last use alone is written at most this often
RETRY_AFTER = 60.0  # seconds: after a failed write, nothing is tried there for this long


class Publisher:
    """This process's file in the registry (one per process: :data:`publisher`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reset()
        self._exit_hooked = False

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._sources: dict[str, tuple[HeldConnection, ...]] = {}  # each face's own list
        self._where: Path | None = None  # where this process's file is, if it has one
        self._shape: tuple[Any, ...] = ()  # what was written, last use aside
        self._used: tuple[float | None, ...] = ()
        self._written = 0.0  # time.monotonic() of the last write
        self._retry_at = 0.0  # after a failure there, nothing is tried before this
        self._failed: Path | None = None

    def after_fork(self) -> None:
        """In a forked child: the parent's file is not this process's."""
        self._lock = threading.Lock()
        self._reset()

    def publish(
        self,
        where: Path | None,
        connections: Sequence[HeldConnection],
        *,
        source: str = "default",
    ) -> bool:
        """Make ``connections`` what this process's entry lists for ``source`` (a face's
        name: two faces in one process each publish their own list; the file holds them
        all, and none left removes it). Returns whether the file was written or removed.
        Never raises."""
        with self._lock:
            if self._pid != os.getpid():
                self._reset()
            if where != self._where and self._where is not None:
                self._remove()  # the setting changed: leave nothing behind
            if where is None:
                return False
            self._sources[source] = tuple(connections)
            connections = [held for name in sorted(self._sources) for held in self._sources[name]]
            shape = tuple(held.shape() for held in connections)
            used = tuple(held.last_used for held in connections)
            now = time.monotonic()
            if shape == self._shape and (used == self._used or now - self._written < REFRESH_EVERY):
                return False
            if now < self._retry_at and where == self._failed:
                return False
            try:
                if connections:
                    self._write(where, connections)
                else:
                    self._remove_from(where)
            except OSError as exc:
                self._retry_at, self._failed = now + RETRY_AFTER, where
                self._shape, self._used = (None,), ()
                logger.debug(
                    "pa_dbhealth: registry %s not written (tried again in %.0f s): %s",
                    where,
                    RETRY_AFTER,
                    exc,
                )
                return False
            self._shape, self._used, self._written = shape, used, now
            return True

    def withdraw(self) -> None:
        """Remove this process's file (at exit)."""
        with self._lock:
            if self._pid == os.getpid():
                self._remove()

    def _write(self, where: Path, connections: Sequence[HeldConnection]) -> None:
        host, pid, started, program = this_process()
        data = {
            "format": FORMAT,
            "host": host,
            "pid": pid,
            "started": started,
            "program": program,
            "written_at": time.time(),
            "connections": [held.as_json() for held in connections],
        }
        text = json.dumps(data, allow_nan=False, separators=(",", ":")).encode()
        with private_files.private_directory(where, create=True) as dir_fd:
            private_files.write_atomically(dir_fd, file_name(host, pid), text)
        self._where = where
        self._hook_exit()

    def _remove(self) -> None:
        if self._where is not None:
            try:
                self._remove_from(self._where)
            except OSError as exc:
                logger.debug("pa_dbhealth: registry file in %s not removed: %s", self._where, exc)
            self._where, self._shape, self._used = None, (), ()

    def _remove_from(self, where: Path) -> None:
        if self._where is None:
            return
        with private_files.private_directory(where, create=False) as dir_fd:
            private_files.remove(dir_fd, file_name(this_host(), os.getpid()))
        self._where = None

    def _hook_exit(self) -> None:
        if self._exit_hooked:
            return
        self._exit_hooked = True
        atexit.register(self.withdraw)
        try:
            import uwsgi  # only inside a uWSGI process
        except ImportError:
            return
        earlier = getattr(uwsgi, "atexit", None)

        def at_worker_exit() -> None:
            self.withdraw()
            if callable(earlier):
                earlier()

        uwsgi.atexit = at_worker_exit


publisher = Publisher()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=publisher.after_fork)
