"""Counts the capped account's connections from the uncapped admin account."""

from __future__ import annotations

import threading
import time

from pa_dbhealth import sandbox


class Sampler(threading.Thread):
    """Samples the account's connections every ``interval`` seconds, in a thread."""

    def __init__(self, info: sandbox.SandboxInfo, interval: float = 0.005) -> None:
        super().__init__(daemon=True)
        self.conn = info.connect(admin=True)
        self.user = info.user
        self.interval = interval
        self.samples: list[frozenset[int]] = []
        self.halt = threading.Event()

    def ids(self) -> frozenset[int]:
        # SHOW PROCESSLIST, not information_schema: no temporary table per sample. Only
        # connections past login count: a connect the cap is refusing shows for an instant
        # as Connect, Busy or Killed in state "login" and never counts against the cap; a
        # closing one (Quit) no longer does.
        cursor = self.conn.cursor()
        cursor.execute("SHOW PROCESSLIST")
        return frozenset(
            int(conn_id)
            for conn_id, user, _host, _db, command, _time, state, *_ in cursor.fetchall()
            if user == self.user
            and command not in ("Connect", "Killed", "Quit")
            and state != "login"
        )

    def held(self) -> list[int]:
        """Connections held at each sample, counting only those seen in a neighbouring
        sample too: a connect the cap refuses lives well under the sampling interval but can
        still be caught, past login, in the instant before the server turns it away."""
        samples = self.samples
        counts = []
        for i, ids in enumerate(samples):
            near = (samples[i - 1] if i else frozenset()) | (
                samples[i + 1] if i + 1 < len(samples) else frozenset()
            )
            counts.append(len(ids & near))
        return counts

    def most_held(self) -> int:
        """The most connections held at once, counting only those seen in the samples before
        and after too: a closing connection can still be listed, on a busy machine for a
        sample or two, after the server let the next connect take its slot (4 were seen on
        a cap of 3). Every connection the bench holds lives a request's hold (20 ms, four
        samples) or longer, so it is counted."""
        samples = self.samples
        return max(
            (len(samples[i - 1] & ids & samples[i + 1]) for i, ids in enumerate(samples[1:-1], 1)),
            default=max(map(len, samples), default=0),
        )

    def run(self) -> None:
        while not self.halt.is_set():
            self.samples.append(self.ids())
            time.sleep(self.interval)

    def wait_count(self, at_most: int, timeout: float = 15) -> None:
        """Wait until the account holds at most ``at_most`` connections."""
        deadline = time.monotonic() + timeout
        while len(self.ids()) > at_most and time.monotonic() < deadline:
            time.sleep(0.05)

    def close(self) -> None:
        self.halt.set()
        if self.is_alive():
            self.join()
        self.conn.close()
