"""Open-loop load: requests that arrive at a fixed rate whatever the answers, so queueing
shows as latency (wrk's closed loop waits for each answer before the next request)."""

from __future__ import annotations

import statistics
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pa_dbhealth import sandbox


@dataclass(frozen=True)
class OpenLoopResult:
    rate: float  # requests sent per second, as scheduled
    requests: int
    non_2xx: int  # non-2xx answers and broken connections
    p50_ms: float
    p99_ms: float
    p999_ms: float
    connects: int  # connects the server accepted meanwhile (its Connections counter)

    @property
    def connects_per_request(self) -> float:
        return self.connects / self.requests if self.requests else 0.0


def _percentile(sorted_ms: list[float], share: float) -> float:
    if not sorted_ms:
        return 0.0
    return sorted_ms[min(len(sorted_ms) - 1, int(share * len(sorted_ms)))]


def global_status(cursor: Any, name: str) -> int:
    """One of the server's counters (``SHOW GLOBAL STATUS``), read on ``cursor``."""
    cursor.execute("SHOW GLOBAL STATUS LIKE %s", [name])
    return int(cursor.fetchone()[1])


def server_connections(info: sandbox.SandboxInfo) -> int:
    """The server's count of connects it accepted since it started (one admin connect)."""
    conn = info.connect(admin=True)
    try:
        return global_status(conn.cursor(), "Connections")
    finally:
        conn.close()


def open_loop(url: str, rate: float, seconds: float, info: sandbox.SandboxInfo) -> OpenLoopResult:
    """``rate`` requests a second for ``seconds``, evenly spaced; each latency is measured
    from the moment the request was due, not from when a thread could send it."""
    count = max(1, round(rate * seconds))
    latencies: list[float] = []
    failed = 0
    lock = threading.Lock()
    before = server_connections(info)
    start = time.monotonic() + 0.2

    def one(index: int) -> None:
        nonlocal failed
        due = start + index / rate
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                ok = 200 <= response.status < 300
                response.read()
        except (urllib.error.HTTPError, OSError):
            ok = False
        with lock:
            latencies.append((time.monotonic() - due) * 1000)
            failed += not ok

    with ThreadPoolExecutor(max_workers=64) as pool:
        list(pool.map(one, range(count)))
    # The admin connects of the two looks count too: one each.
    connects = server_connections(info) - before - 1
    ordered = sorted(latencies)
    return OpenLoopResult(
        rate=rate,
        requests=count,
        non_2xx=failed,
        p50_ms=statistics.median(ordered),
        p99_ms=_percentile(ordered, 0.99),
        p999_ms=_percentile(ordered, 0.999),
        connects=max(0, connects),
    )
