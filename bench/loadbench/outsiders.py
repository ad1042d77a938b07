"""The refused-connects row: the account's whole cap held outside pa_dbhealth (a console:
plain MySQLdb connections, in another process) all along, while wrk sends requests to the
view that uses the database. Every request waits ``CONNECT_RETRY`` and gets a 503 with
Retry-After; meanwhile the server counts the connects it refuses (``Aborted_connects``),
which the line keeps to about 20 a second, whatever the number of waiters."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadbench.configs import Config
from loadbench.holder import held_elsewhere
from loadbench.openloop import global_status
from loadbench.scenarios import LIMIT
from loadbench.servers import Server
from loadbench.wrk import STATUSES_LUA, WrkResult, wrk
from pa_dbhealth import sandbox

CLIENTS = (1, 4, 8)
QUIET = 0.5  # seconds without a refused connect: no request of the last row still waits


@dataclass(frozen=True)
class OutsiderResult:
    config: Config
    clients: int
    load: WrkResult
    refused: int  # connects the server refused during the row (its Aborted_connects)
    seconds: float  # between the two readings of Aborted_connects

    @property
    def refused_per_second(self) -> float:
        return self.refused / self.seconds if self.seconds else 0.0


def aborted_connects(admin: Any) -> int:
    return global_status(admin.cursor(), "Aborted_connects")


def settle(admin: Any, timeout: float) -> None:
    """Wait until the server has refused no connect for ``QUIET`` seconds: the requests
    wrk left behind have given up."""
    deadline = time.monotonic() + timeout
    last, since = aborted_connects(admin), time.monotonic()
    while time.monotonic() - since < QUIET and time.monotonic() < deadline:
        time.sleep(0.05)
        now = aborted_connects(admin)
        if now != last:
            last, since = now, time.monotonic()


def run_outsiders(
    config: Config, info: sandbox.SandboxInfo, args: Any, log: Path
) -> list[OutsiderResult]:
    """Serve ``config`` with ``CONNECT_RETRY`` = ``args.outsiders_retry``, hold the whole
    cap outside it, and load it at each of ``CLIENTS`` in turn."""
    retry = args.outsiders_retry
    results = []
    with contextlib.ExitStack() as stack:
        server = Server(config, info, args, log, {"BENCH_CONNECT_RETRY": str(retry)})
        stack.callback(server.stop)
        server.wait_ready()
        admin = stack.enter_context(contextlib.closing(info.connect(admin=True)))
        stack.enter_context(held_elsewhere(info, LIMIT))
        for clients in CLIENTS:
            settle(admin, retry + 5)
            before, started = aborted_connects(admin), time.monotonic()
            load = wrk(f"{server.url}/db/", args.outsiders_duration, clients, STATUSES_LUA)
            refused, seconds = aborted_connects(admin) - before, time.monotonic() - started
            results.append(OutsiderResult(config, clients, load, refused, seconds))
        settle(admin, retry + 5)  # the holder lets go once nobody waits
    return results
