"""A configuration under load: one uWSGI server, wrk at each client count against the view
that holds its connection, the sampler watching the account, optionally with one of the
account's connections held by another process all along."""

from __future__ import annotations

import contextlib
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadbench.configs import Config
from loadbench.holder import held_elsewhere
from loadbench.metrics import wait_figures
from loadbench.sampler import Sampler
from loadbench.servers import Server
from loadbench.wrk import WrkResult, wrk
from pa_dbhealth import sandbox

LIMIT = 3  # the sandbox account's cap


@dataclass(frozen=True)
class Scenario:
    config: Config
    clients: int
    held_elsewhere: bool = False

    @property
    def connections(self) -> int:
        """The connections the site can have: the cap, less the one held elsewhere."""
        return LIMIT - self.held_elsewhere


@dataclass(frozen=True)
class Result:
    scenario: Scenario
    load: WrkResult
    max_held: int
    mean_held: float
    errors_1226: int
    retries: int
    giveups: int
    handoffs: int

    @property
    def held_per_request_ms(self) -> float:
        """Connection time each successful request really used (Little's law: mean
        connections held by the site / successful requests per second): the view's hold
        plus the connect, login and close that CONN_MAX_AGE=0 pays on every request."""
        rate = self.load.ok_per_second
        site_held = self.mean_held - self.scenario.held_elsewhere
        return 1000 * site_held / rate if rate else 0.0


def run_config(
    config: Config,
    clients: list[int],
    info: sandbox.SandboxInfo,
    args: Any,
    log: Path,
    *,
    held: bool = False,
) -> list[Result]:
    """Serve ``config`` once and load it at each client count in turn; ``held``: with one
    of the account's connections held by another process all along."""
    with contextlib.ExitStack() as stack:
        if held:
            stack.enter_context(held_elsewhere(info))
        server = Server(config, info, args, log)
        stack.callback(server.stop)
        server.wait_ready()
        results = []
        for count in clients:
            scenario = Scenario(config, count, held)
            if args.warmup:
                wrk(f"{server.url}/db/", args.warmup, count)
            results.append(measure(scenario, server, info, args.duration))
        if config.app and not config.flask:
            print(f"wait figures of {config.name} after its run:", flush=True)
            print(wait_figures(server.url), flush=True)
    with contextlib.closing(Sampler(info)) as after:
        after.wait_count(0)  # the next configuration starts with the account empty
    return results


def measure(
    scenario: Scenario, server: Server, info: sandbox.SandboxInfo, seconds: float
) -> Result:
    offset = server.log_size()
    sampler = Sampler(info)
    sampler.start()
    try:
        load = wrk(f"{server.url}/db/", seconds, scenario.clients)
    finally:
        sampler.close()
    errors_1226, retries, giveups, handoffs = server.log_counts(offset)
    held = sampler.held()
    return Result(
        scenario=scenario,
        load=load,
        max_held=sampler.most_held(),
        mean_held=statistics.fmean(held) if held else 0.0,
        errors_1226=errors_1226,
        retries=retries,
        giveups=giveups,
        handoffs=handoffs,
    )
