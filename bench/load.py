"""Load benchmark: Django and Flask sites under uWSGI against an account capped at 3 connections.

    .venv/bin/python bench/load.py [--duration 10] [--clients 8,16,32] [--quick]

Starts its own capped MariaDB (``pa_dbhealth.sandbox``) and, for each configuration in
turn, the site in ``bench/benchsite`` (or ``bench/flasksite``) under uWSGI (4 processes x
2 threads, HTTP on loopback), driven by wrk for a fixed time at each client count against a
view that holds its database connection for ``--hold-ms`` (one ``SELECT SLEEP()``). An
uncapped admin connection samples the account's connections every few milliseconds. Some
configurations run again with one of the account's connections held by another process
all along. Then it measures pa_dbhealth's cost on a view without database use: HTTP
throughput beside its noise floor, and instructions per request where valgrind is
installed. Each row is judged against the targets of issue #14. Last, the outsiders row
(issue #20): the whole cap held by plain MySQLdb connections of another process while 1, 4
and 8 clients wait, counting the connects the server refuses (``--only outsiders`` runs it
alone). Everything it starts is stopped on the way out, also on Ctrl-C. The parts are in
``bench/loadbench/``.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from loadbench import configs, machine, overhead, report
from loadbench.outsiders import OutsiderResult, run_outsiders
from loadbench.scenarios import LIMIT, Result, run_config

from pa_dbhealth import sandbox

ALL_CLIENTS = [8, 16, 32]
OUTSIDERS = "outsiders"


def client_counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"--clients: not a list of counts: {text!r}")
    return counts


def part(text: str) -> int | str:
    """A part of the run for ``--only``: a configuration's number, or ``outsiders``."""
    if text == OUTSIDERS:
        return text
    if text.isdigit() and int(text) < len(configs.CONFIGS):
        return int(text)
    raise argparse.ArgumentTypeError(
        f"--only: {text!r} is neither {OUTSIDERS} nor a configuration number from 0 to "
        f"{len(configs.CONFIGS) - 1}"
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=10, help="seconds per client count")
    p.add_argument("--hold-ms", type=float, default=20, help="connection hold per request")
    p.add_argument(
        "--clients",
        type=client_counts,
        help="client counts, e.g. 8,16,32 (default: 8,16,32 for pa_dbhealth's "
        "configurations, 8 for the others)",
    )
    p.add_argument("--processes", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=11, help="no-database rounds per server")
    p.add_argument("--overhead-seconds", type=float, default=2)
    p.add_argument(
        "--quick",
        "--smoke",
        action="store_true",
        help="2 s per client count, one no-database round, no instruction count: does it work?",
    )
    p.add_argument(
        "--only",
        type=part,
        nargs="+",
        metavar="N|outsiders",
        help="configurations by number: "
        + ", ".join(f"{i} {c.name}" for i, c in enumerate(configs.CONFIGS))
        + f" (default: {' '.join(map(str, configs.DEFAULT))}); and/or {OUTSIDERS}: the "
        "outsiders row (alone: nothing else, not even the no-database view)",
    )
    p.add_argument("--no-held-elsewhere", action="store_true", help="skip that scenario")
    p.add_argument("--no-outsiders", action="store_true", help="skip the outsiders row")
    p.add_argument("--outsiders-duration", type=float, default=6, help="seconds per outsiders row")
    p.add_argument(
        "--outsiders-retry",
        type=float,
        default=2,
        help="CONNECT_RETRY of the outsiders row's sites, seconds",
    )
    p.add_argument("--no-overhead", action="store_true", help="skip the no-database view")
    p.add_argument(
        "--instructions",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="count instructions per request under callgrind (default: where valgrind is "
        "installed, except with --quick, --no-overhead or --registry-ab)",
    )
    p.add_argument("--instruction-requests", type=int, default=500)
    p.add_argument(
        "--registry-ab",
        action="store_true",
        help="pa_dbhealth without and with its registry of holders, side by side (the "
        "configurations and the no-database view), instead of plain Django against it",
    )
    p.add_argument("--keep", metavar="DIR", help="keep the uWSGI logs in DIR")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    args.warmup = 1
    args.nodb_clients = min(args.clients or ALL_CLIENTS)
    numbers = [n for n in args.only or () if isinstance(n, int)]
    if args.only and not numbers:  # --only outsiders
        args.no_overhead = True
    if args.quick:
        args.duration, args.rounds, args.overhead_seconds, args.warmup = 2, 1, 1, 0
        args.outsiders_duration, args.outsiders_retry = 3, 1
    if args.instructions is None:
        args.instructions = not (args.quick or args.no_overhead or args.registry_ab)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks
    started_at, load_before = time.monotonic(), machine.load_average()
    chosen = [configs.CONFIGS[i] for i in (numbers if args.only else _default(args))]
    outsiders = (
        [configs.CONFIGS[i] for i in configs.OUTSIDERS]
        if OUTSIDERS in (args.only or [OUTSIDERS]) and not (args.no_outsiders or args.registry_ab)
        else []
    )
    held = [] if args.no_held_elsewhere or args.registry_ab else configs.HELD_ELSEWHERE
    names = ("registry off", "registry on") if args.registry_ab else ("plain Django", "pa_dbhealth")

    with (
        tempfile.TemporaryDirectory(prefix="pa_dbhealth-bench-") as tmp,
        started(Path(args.keep or tmp), keep=bool(args.keep)) as info,
    ):
        work = Path(args.keep or tmp)
        print(f"machine: {machine.describe(info)}", flush=True)
        print(f"load average at the start: {load_before}", flush=True)
        results: list[Result] = []
        for n, config in enumerate(chosen):
            counts = _clients(config, args)
            print(f"running {config.name}, clients {counts} ...", flush=True)
            results += run_config(config, counts, info, args, work / f"uwsgi-{n}.log")
        for n, config in enumerate(c for c in chosen if configs.CONFIGS.index(c) in held):
            counts = _clients(config, args)[:1]
            print(f"running {config.name}, one held elsewhere ...", flush=True)
            log = work / f"uwsgi-held-{n}.log"
            results += run_config(config, counts, info, args, log, held=True)
        if not args.no_overhead:
            print(f"running the no-database view, {args.rounds} rounds ...", flush=True)
            base = configs.PA_NO_REGISTRY if args.registry_ab else configs.PLAIN_0
            cost = overhead.overhead(info, args, work, base, configs.PA)
        outside: list[OutsiderResult] = []
        for n, config in enumerate(outsiders):
            print(f"running {config.name}, the cap held outside ...", flush=True)
            outside += run_outsiders(config, info, args, work / f"uwsgi-outsiders-{n}.log")
    if args.instructions:
        print("counting instructions under callgrind ...", flush=True)
        per = overhead.instructions(args.instruction_requests)

    hold = args.hold_ms / 1000
    if results:
        print()
        print(
            f"uWSGI {args.processes} processes x {args.threads} threads, account capped at "
            f"{LIMIT}, each request holds its connection {args.hold_ms:g} ms, "
            f"{args.duration:g} s per row"
        )
        print(report.table(results, hold))
        print(report.TARGETS)
    if outside:
        print()
        print(
            f"refused connects at a cap held outside: uWSGI {args.processes} processes x "
            f"{args.threads} threads, the account's {LIMIT} connections held by plain MySQLdb "
            f"connections of another process, CONNECT_RETRY {args.outsiders_retry:g} s, "
            f"{args.outsiders_duration:g} s per row"
        )
        print(report.outsider_table(outside, args.outsiders_retry))
        print(report.OUTSIDER_TARGETS)
    if not args.no_overhead:
        print()
        print("\n".join(report.overhead_lines(cost, args.rounds, names)))
    if args.instructions:
        print("\n".join(report.instruction_lines(per, args.instruction_requests)))
    elif not args.no_overhead:
        print("instructions per request: not counted in this run (see --instructions)")
    print()
    print(f"load average at the end: {machine.load_average()}")
    print(f"total time: {time.monotonic() - started_at:.0f} s")
    return 0


def _default(args: argparse.Namespace) -> tuple[int, ...]:
    return configs.REGISTRY_AB if args.registry_ab else configs.DEFAULT


def _clients(config: configs.Config, args: argparse.Namespace) -> list[int]:
    if args.clients:
        return list(args.clients)
    return ALL_CLIENTS if configs.is_pa(config) else ALL_CLIENTS[:1]


@contextlib.contextmanager
def started(work: Path, *, keep: bool) -> Iterator[sandbox.SandboxInfo]:
    info = sandbox.start(work / "db")
    try:
        yield info
    finally:
        sandbox.stop(info, remove=not keep)


if __name__ == "__main__":
    sys.exit(main())
