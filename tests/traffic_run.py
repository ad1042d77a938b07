"""200 requests to a site in a process of its own, one at a time and N at once in turn, with
the account's connections watched all along: what the ASGI and threaded-server tests share.

``site`` has ``get(path) -> (status, body)`` and ``output()`` (the server's log)."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from conftest import account_connection_ids, account_ids_once

REQUESTS = 200
# Django's and the driver's words for a refused connect in a server's log.
CAP_ERROR = re.compile(r"OperationalError\)?:? \((?:1226|1040)\b")


class Site(Protocol):
    def get(self, path: str) -> tuple[int, bytes]: ...

    def output(self) -> str: ...


@dataclass
class Traffic:
    """What a run of requests saw: statuses, cap errors in the server's log, the most
    connections the account held at once and after each round with no request in flight."""

    statuses: dict[int, int] = field(default_factory=dict)
    most_held: int = 0
    most_in_flight: int = 0
    left_after_rounds: list[int] = field(default_factory=list)
    cap_errors: int = 0

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())


def drive(
    site: Site,
    paths: Sequence[str],
    admin_factory: Callable[[], Any],
    admin: Any,
    *,
    settle: float = 0.5,
    concurrency: int = 3,
    left: Callable[[list[int]], bool] = lambda ids: not ids,
) -> Traffic:
    """Send :data:`REQUESTS` requests over ``paths``: a round is one request or
    ``concurrency`` at once. After each round (nothing in flight) the account's connections
    are counted once ``left(ids)`` holds, or after ``settle`` seconds."""
    traffic = Traffic()
    in_flight = 0
    lock = threading.Lock()
    done = threading.Event()

    def sample() -> None:  # the account's connections, as often as the server answers
        watcher = admin_factory()
        while not done.is_set():
            held = len(account_connection_ids(watcher))
            with lock:
                traffic.most_held = max(traffic.most_held, held)

    def one(path: str) -> None:
        nonlocal in_flight
        with lock:
            in_flight += 1
            traffic.most_in_flight = max(traffic.most_in_flight, in_flight)
        status, _ = site.get(path)
        with lock:
            in_flight -= 1
            traffic.statuses[status] = traffic.statuses.get(status, 0) + 1

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        with ThreadPoolExecutor(concurrency) as pool:
            sent = 0
            for round_ in range(REQUESTS):
                size = concurrency if round_ % 2 else 1
                list(pool.map(one, [paths[(sent + i) % len(paths)] for i in range(size)]))
                sent += size
                remaining = account_ids_once(admin, left, timeout=settle)
                traffic.left_after_rounds.append(len(remaining))
                if sent >= REQUESTS:
                    break
        assert sent == REQUESTS
    finally:
        done.set()
        sampler.join()
    traffic.cap_errors = len(CAP_ERROR.findall(site.output()))
    return traffic
