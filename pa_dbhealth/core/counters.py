"""A process's counts since start, kept alike by every face's tracker (the Django
``tracker.ledger``, ``sqlalchemy.tracker``): connections opened, closed and leaked, and what
the connect policy (:mod:`pa_dbhealth.core.connect`) reports as it waits."""

from __future__ import annotations

import threading

from pa_dbhealth.core.refusals import GIVEUP, HANDOFF, LOOK_REFUSED, RETRY

FIGURES = (
    "opened",
    "closed",
    "leaks",
    "connect_retries",
    "connect_giveups",
    "connect_handoffs",
    "probes_refused",
)
# The connect policy's events, as the figures they count.
EVENTS = {
    RETRY: "connect_retries",
    GIVEUP: "connect_giveups",
    HANDOFF: "connect_handoffs",
    LOOK_REFUSED: "probes_refused",
}


class Counters:
    """Thread-safe counts by figure name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(FIGURES, 0)

    def count(self, figure: str, by: int = 1) -> None:
        with self._lock:
            self._counts[figure] += by

    def event(self, event: str) -> None:
        """Count one of the connect policy's events (``Target.count``)."""
        self.count(EVENTS[event])

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)
