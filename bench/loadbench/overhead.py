"""What pa_dbhealth costs on a view without database use: HTTP throughput and uWSGI CPU
time per request against plain Django, beside the noise floor (plain Django against a
second plain Django, in the same rounds); and instructions per request under callgrind."""

from __future__ import annotations

import shutil
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadbench.configs import Config
from loadbench.servers import Server
from loadbench.wrk import wrk
from pa_dbhealth import sandbox

SIDES = ("base", "twin", "subject")  # baseline, the baseline again, pa_dbhealth


@dataclass(frozen=True)
class Ratio:
    """Per-round ratios to the baseline: their median and interquartile range."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, ratios: list[float]) -> Ratio:
        if len(ratios) < 4:
            return cls(statistics.median(ratios), min(ratios), max(ratios))
        low, _, high = statistics.quantiles(ratios, n=4)
        return cls(statistics.median(ratios), low, high)

    def __str__(self) -> str:
        spread = f"quartiles {self.low:.3f}-{self.high:.3f}"
        return f"{self.median:.3f} ({self.median - 1:+.1%}; {spread})"


@dataclass(frozen=True)
class Overhead:
    rates: dict[str, float]  # median successful requests/s of each side
    cpu_us: dict[str, float]  # median uWSGI CPU time per successful request
    rate: Ratio  # subject / baseline throughput
    rate_noise: Ratio  # twin / baseline throughput: the noise floor
    cpu: Ratio
    cpu_noise: Ratio


def overhead(
    info: sandbox.SandboxInfo, args: Any, work: Path, baseline: Config, subject: Config
) -> Overhead:
    """Load the no-database view of ``baseline`` twice over and of ``subject``, round after
    round.

    The three servers run side by side and are loaded one right after the other in each
    round, in an order that rotates, so a change in the machine's other load hits all
    alike. Besides throughput, uWSGI's own CPU time per request is measured: on a shared
    machine it varies much less than throughput does.
    """
    configs = {"base": baseline, "twin": baseline, "subject": subject}
    servers = {s: Server(configs[s], info, args, work / f"uwsgi-nodb-{s}.log") for s in SIDES}
    rates: dict[str, list[float]] = {s: [] for s in SIDES}
    cpu: dict[str, list[float]] = {s: [] for s in SIDES}
    try:
        for server in servers.values():
            server.wait_ready()
            if args.warmup:
                wrk(f"{server.url}/nodb/", args.warmup, args.nodb_clients)
        for round_ in range(args.rounds):
            order = SIDES[round_ % 3 :] + SIDES[: round_ % 3]
            for side in order if round_ % 2 == 0 else reversed(order):
                server = servers[side]
                before = server.cpu_seconds()
                out = wrk(f"{server.url}/nodb/", args.overhead_seconds, args.nodb_clients)
                used = server.cpu_seconds() - before
                ok = out.requests - out.non_2xx
                rates[side].append(out.ok_per_second)
                cpu[side].append(1e6 * used / ok if ok else float("nan"))
    finally:
        for server in servers.values():
            server.stop()

    def ratios(values: dict[str, list[float]], side: str) -> Ratio:
        return Ratio.of([q / p for p, q in zip(values["base"], values[side], strict=True)])

    return Overhead(
        rates={s: statistics.median(rates[s]) for s in SIDES},
        cpu_us={s: statistics.median(cpu[s]) for s in SIDES},
        rate=ratios(rates, "subject"),
        rate_noise=ratios(rates, "twin"),
        cpu=ratios(cpu, "subject"),
        cpu_noise=ratios(cpu, "twin"),
    )


def instructions(requests: int) -> dict[str, float] | str:
    """Instructions per request of plain Django and of pa_dbhealth (callgrind), or why
    they were not counted."""
    if shutil.which("valgrind") is None:
        return "valgrind is not installed (apt-get install valgrind): instructions not counted"
    from middleware_overhead import instructions_per_request

    return instructions_per_request(requests)
