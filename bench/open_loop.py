"""Open-loop benchmark: requests at 25, 50, 75 and 90 % of the connection-bound limit.

    .venv/bin/python bench/open_loop.py [--duration 10] [--only 0 1 2 9] [--held-elsewhere]
                                        [--rtt-ms 0.5]

Starts its own capped MariaDB and, for each configuration in turn (``bench/load.py``'s
numbers), the Django site under uWSGI (4 processes x 2 threads by default, with
``--enable-threads``, which PARK needs with one thread per process), then sends requests to
the view that holds its connection ``--hold-ms`` at fixed rates: a request is sent when it
is due, whether or not the earlier ones were answered, so a queue shows as latency (wrk's
closed loop hides it). Reports p50/p99/p99.9 from the moment each request was due, the
non-2xx, the connects the server accepted per request, and the CPU uWSGI used per request
(master, workers and HTTP router: PARK's releaser thread counts too). ``--held-elsewhere``:
one of the account's connections held by another process all along (a scheduled task).
``--rtt-ms``: the site reaches the server through a proxy that delays every byte by half
that round trip (``loadbench/distance.py``), as a database on another machine would.
After the rates, the site idles a second; then, for ``--idle-seconds``, the statements the
server receives a second while it idles (its ``Questions``, the bench's own left out: PARK's
counts of the account); last, a console connects (a raw connection of the account, outside
pa_dbhealth, tried again every 5 ms): how long until the server lets it in.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

from loadbench import configs, machine
from loadbench.distance import far_away
from loadbench.holder import held_elsewhere
from loadbench.openloop import OpenLoopResult, global_status, open_loop
from loadbench.scenarios import LIMIT
from loadbench.servers import Server
from loadbench.wrk import wrk

from pa_dbhealth import sandbox

SHARES = (0.25, 0.5, 0.75, 0.9)
DEFAULT = (0, 1, 2, 9)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=10, help="seconds per rate")
    p.add_argument("--hold-ms", type=float, default=20, help="connection hold per request")
    p.add_argument("--processes", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--only", type=int, nargs="+", default=list(DEFAULT), metavar="N")
    p.add_argument("--held-elsewhere", action="store_true")
    p.add_argument("--rtt-ms", type=float, default=0, help="round trip to the database")
    p.add_argument("--idle-seconds", type=float, default=3, help="the idle site's statements")
    p.add_argument("--keep", metavar="DIR", help="keep the uWSGI logs in DIR")
    return p


def run(
    config: configs.Config, info: sandbox.SandboxInfo, args: argparse.Namespace, log: Path
) -> tuple[list[tuple[OpenLoopResult, float]], tuple[float, int, float]]:
    """``config`` served once, loaded at each share of the limit in turn; then the idle
    site's statements a second, and the console at the idle site."""
    connections = LIMIT - args.held_elsewhere
    limit = connections / (args.hold_ms / 1000)
    with contextlib.ExitStack() as stack:
        if args.held_elsewhere:
            stack.enter_context(held_elsewhere(info))
        settings = {}
        if args.rtt_ms > 0:
            port = stack.enter_context(far_away(info.host, info.port, args.rtt_ms))
            settings["DB_PORT"] = str(port)
        server = Server(config, info, args, log, settings)
        stack.callback(server.stop)
        server.wait_ready()
        wrk(f"{server.url}/db/", 1, 2)  # warm up: every worker has imported its views
        results = []
        for share in SHARES:
            cpu = server.cpu_seconds()
            result = open_loop(f"{server.url}/db/", share * limit, args.duration, info)
            cpu_ms = (server.cpu_seconds() - cpu) * 1000 / max(result.requests, 1)
            results.append((result, cpu_ms))
        time.sleep(1.0)  # the site idles
        statements = idle_statements(info, args.idle_seconds)
        return results, (*console_at_idle(info), statements)


def idle_statements(info: sandbox.SandboxInfo, seconds: float) -> float:
    """Statements the server received a second over ``seconds`` (its ``Questions``), less
    the two this asks with."""
    if seconds <= 0:
        return float("nan")
    admin = info.connect(admin=True)
    try:
        cursor = admin.cursor()
        before = global_status(cursor, "Questions")
        time.sleep(seconds)
        return (global_status(cursor, "Questions") - before - 1) / seconds
    finally:
        admin.close()


def console_at_idle(info: sandbox.SandboxInfo, give_up_after: float = 5.0) -> tuple[float, int]:
    """A console connecting to the idle site's account: seconds until it was let in (inf
    if never within ``give_up_after``), and how many times the server refused it first."""
    started, refused = time.monotonic(), 0
    while time.monotonic() - started < give_up_after:
        try:
            info.connect().close()
            return time.monotonic() - started, refused
        except Exception:  # 1226: the account is full
            refused += 1
            time.sleep(0.005)
    return float("inf"), refused


def row(config: configs.Config, share: float, measured: tuple[OpenLoopResult, float]) -> str:
    result, cpu_ms = measured
    cells = [
        config.name,
        f"{share:.0%}",
        f"{result.rate:.1f}",
        str(result.requests),
        str(result.non_2xx),
        f"{result.p50_ms:.1f}",
        f"{result.p99_ms:.1f}",
        f"{result.p999_ms:.1f}",
        f"{result.connects_per_request:.2f}",
        f"{cpu_ms:.2f}",
    ]
    return "| " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pa_dbhealth-openloop-") as tmp:
        work = Path(args.keep or tmp)
        info = sandbox.start(work / "db")
        try:
            print(f"machine: {machine.describe(info)}", flush=True)
            print(f"load average at the start: {machine.load_average()}", flush=True)
            lines = [
                "| configuration | of limit | requests/s | requests | non-2xx | p50 ms | p99 ms "
                "| p99.9 ms | connects/request | uWSGI CPU ms/request |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            ]
            consoles = [
                "| configuration | idle site's statements/s | console let in after ms "
                "| refused first |",
                "|---|---:|---:|---:|",
            ]
            for n in args.only:
                config = configs.CONFIGS[n]
                print(f"running {config.name} ...", flush=True)
                results, idle = run(config, info, args, work / f"uwsgi-{n}.log")
                seconds, refused, statements = idle
                lines += [row(config, s, r) for s, r in zip(SHARES, results, strict=True)]
                consoles.append(
                    f"| {config.name} | {statements:.1f} | {seconds * 1000:.1f} | {refused} |"
                )
        finally:
            sandbox.stop(info, remove=not args.keep)
    held = ", one connection held elsewhere" if args.held_elsewhere else ""
    if args.rtt_ms > 0:
        held += f", the database {args.rtt_ms:g} ms away (round trip, through a proxy)"
    print(
        f"\nopen loop: uWSGI {args.processes} processes x {args.threads} threads, account "
        f"capped at {LIMIT}{held}, each request holds its connection {args.hold_ms:g} ms, "
        f"{args.duration:g} s per row"
    )
    print("\n".join(lines))
    print("\nThe idle site (from a second after the last rate), then a console:")
    print("\n".join(consoles))
    print(f"load average at the end: {machine.load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
