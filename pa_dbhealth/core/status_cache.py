"""The status anonymous visitors see, looked up at most once a second per process.

An anonymous view of the status page or the health view learns the overall status and
nothing else, so it need not cost a database connection of its own: on an account capped at
3, a stranger's view would compete with the site for them. Every anonymous view of a
process shares the last report for :data:`FRESH_FOR` seconds; when it is older, one thread
looks again while the others keep answering with the last report (they wait only when
there is none yet). A visitor with access (the token, a staff user) looks afresh.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Hashable

from pa_dbhealth.core.health import Report

FRESH_FOR = 1.0  # seconds an anonymous view's report is shared


class SharedStatus:
    """The last report per key (the face and its databases), shared within a process."""

    def __init__(self) -> None:
        self._start()

    def _start(self) -> None:
        self._pid = os.getpid()  # a forked child starts afresh: a lock may be held
        self._lock = threading.Lock()
        self._reports: dict[Hashable, tuple[float, Report]] = {}
        self._looking: dict[Hashable, threading.Lock] = {}

    def report(
        self, key: Hashable, look: Callable[[], Report], *, fresh_for: float = FRESH_FOR
    ) -> Report:
        """The report of ``key`` if it is at most ``fresh_for`` seconds old, else ``look()``
        once for every thread that asks meanwhile."""
        if self._pid != os.getpid():
            self._start()
        with self._lock:
            last = self._reports.get(key)
            if last is not None and time.monotonic() - last[0] <= fresh_for:
                return last[1]
            gate = self._looking.setdefault(key, threading.Lock())
        if not gate.acquire(blocking=last is None):
            assert last is not None
            return last[1]  # another thread is looking: the last report meanwhile
        try:
            with self._lock:  # a thread that held the gate may have just looked
                newer = self._reports.get(key)
                if newer is not None and newer is not last:
                    return newer[1]
            report = look()
            with self._lock:
                self._reports[key] = (time.monotonic(), report)
            return report
        finally:
            gate.release()

    def clear(self) -> None:
        """Forget every report (settings changed; a test starts)."""
        with self._lock:
            self._reports.clear()


shared = SharedStatus()  # the Django face's; each Flask app has its own
