"""Load benchmark: a Django site under uWSGI against an account capped at 3 connections.

    .venv/bin/python bench/load.py [--duration 20] [--smoke]

Starts its own capped MariaDB (``pa_dbhealth.sandbox``) and, for each configuration in
turn, the site in ``bench/benchsite`` under uWSGI (4 processes x 2 threads, HTTP on
loopback), driven by wrk with 8 connections for a fixed time against a view that holds
its database connection for ``--hold-ms`` (one ``SELECT SLEEP()``). An uncapped admin
connection samples the account's connections every few milliseconds. Then it measures
the middleware's cost on a view without database use, alternating plain Django and
pa_dbhealth. Everything it starts is stopped on the way out, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pa_dbhealth import sandbox

HERE = Path(__file__).resolve().parent
REPORT_LUA = HERE / "report.lua"
LIMIT = 3


@dataclass(frozen=True)
class Config:
    name: str
    engine: str
    conn_max_age: int
    app: bool  # pa_dbhealth in INSTALLED_APPS (Flask: DbHealth)
    middleware: bool  # and its ConnectionHygieneMiddleware
    flask: str | None = None  # the Flask demo with this FLASK_DEMO_ENGINE, instead of Django
    registry: bool = True  # its registry of holders (REGISTRY_DIR = False when not)


PLAIN_0 = Config("plain, CONN_MAX_AGE=0", "django.db.backends.mysql", 0, False, False)
PLAIN_600 = Config("plain, CONN_MAX_AGE=600", "django.db.backends.mysql", 600, False, False)
PA = Config("pa_dbhealth backend + middleware", "pa_dbhealth.backends.mysql", 0, True, True)
# Not one of the three of the issue: the backend alone shows what the middleware's early
# release adds.
PA_BACKEND = Config("pa_dbhealth backend only", "pa_dbhealth.backends.mysql", 0, True, False)
# The support question's Flask app (flask_demo): its engine (Flask-SQLAlchemy's defaults),
# the answer's hand-tuned pool, and pa_dbhealth's engine_options with DbHealth.
FLASK_SEED = Config("Flask, SQLAlchemy's default pool (5 + 10)", "", 0, False, False, "seed")
FLASK_ANSWER = Config("Flask, hand-tuned pool (2 + 1, recycle 280)", "", 0, False, False, "answer")
FLASK_PA = Config("Flask, pa_dbhealth (engine_options + DbHealth)", "", 0, True, False, "fitted")
# The same as PA without the registry of holders: what the registry costs (--registry-ab).
PA_NO_REGISTRY = Config(
    "pa_dbhealth, registry off", "pa_dbhealth.backends.mysql", 0, True, True, registry=False
)
CONFIGS = (
    PLAIN_0,
    PLAIN_600,
    PA,
    PA_BACKEND,
    FLASK_SEED,
    FLASK_ANSWER,
    FLASK_PA,
    PA_NO_REGISTRY,
)
DEFAULT = (0, 1, 2, 4, 5, 6)
REGISTRY_AB = (7, 2)


@dataclass
class Result:
    config: Config
    requests: int
    seconds: float
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p99_ms: float
    max_held: int
    mean_held: float
    errors_1226: int
    retries: int
    giveups: int
    handoffs: int

    @property
    def ok_per_second(self) -> float:
        return (self.requests - self.non_2xx) / self.seconds

    @property
    def held_per_request_ms(self) -> float:
        """Connection time each successful request really used (Little's law: mean
        connections held / successful requests per second): the view's hold plus the
        connect, login and close that CONN_MAX_AGE=0 pays on every request."""
        return 1000 * self.mean_held / self.ok_per_second if self.ok_per_second else 0.0


def uwsgi_binary() -> str:
    found = shutil.which("uwsgi", path=str(Path(sys.executable).parent)) or shutil.which("uwsgi")
    if not found:
        raise SystemExit("uwsgi is not installed: `pip install uwsgi` (it compiles)")
    return found


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk is not installed: `apt-get install wrk`")
    return found


class Server:
    """One uWSGI instance serving the bench site with one configuration."""

    def __init__(self, config: Config, info: sandbox.SandboxInfo, args: Any, log: Path) -> None:
        self.port = sandbox.free_port()
        self.log = log
        env = {
            **os.environ,
            **info.env(),
            "DJANGO_SETTINGS_MODULE": "benchsite.settings",
            "BENCH_ENGINE": config.engine,
            "BENCH_CONN_MAX_AGE": str(config.conn_max_age),
            "BENCH_PA_DBHEALTH": "1" if config.app else "0",
            "BENCH_MIDDLEWARE": "1" if config.middleware else "0",
            "BENCH_REGISTRY": "1" if config.registry else "0",
            "BENCH_HOLD": str(args.hold_ms / 1000),
            "FLASK_DEMO_ENGINE": config.flask or "",
            "FLASK_DEMO_DBHEALTH": "1" if config.app else "0",
            # The bench's own registry of holders, not the user's.
            "PA_DBHEALTH_REGISTRY_DIR": str(log.parent / "registry" / "holders"),
        }
        module = "flasksite.wsgi:application" if config.flask else "benchsite.wsgi:application"
        cmd = [
            uwsgi_binary(),
            "--master",
            "--die-on-term",
            "--need-app",
            "--strict",
            f"--http=127.0.0.1:{self.port}",
            "--http-keepalive",
            f"--processes={args.processes}",
            f"--threads={args.threads}",
            f"--home={sys.prefix}",
            f"--pythonpath={HERE}",
            f"--pythonpath={HERE.parent}",  # flask_demo
            f"--module={module}",
            "--disable-logging",
            f"--logto={log}",
        ]
        self.proc = subprocess.Popen(cmd, env=env, start_new_session=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"uWSGI exited ({self.proc.returncode}): see {self.log}")
            try:
                with urllib.request.urlopen(f"{self.url}/nodb/", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"uWSGI did not answer within {timeout:g} s: see {self.log}")
            time.sleep(0.1)

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by uWSGI: its master, workers and router."""
        ticks = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                # Fields after the command name, which is in parentheses: state, ppid,
                # pgrp, session, ... utime and stime are the 12th and 13th of them.
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue  # gone meanwhile
            if int(fields[3]) == self.proc.pid:  # in uWSGI's own session (start_new_session)
                ticks += int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: only what we started
                self.proc.wait()


def wrk(url: str, seconds: float, clients: int) -> dict[str, int]:
    cmd = [wrk_binary(), "-t", str(min(2, clients)), "-c", str(clients)]
    cmd += ["-d", f"{max(1, round(seconds))}s", "--timeout", "30s", "-s", str(REPORT_LUA), url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 90, check=True)
    match = re.search(r"^BENCH (.*)$", out.stdout, re.MULTILINE)
    if not match:
        raise SystemExit(f"unexpected wrk output:\n{out.stdout}{out.stderr}")
    return {k: int(v) for k, v in (pair.split("=") for pair in match.group(1).split())}


class Sampler(threading.Thread):
    """Counts the account's connections from the uncapped admin account every ``interval``."""

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

    def run(self) -> None:
        while not self.halt.is_set():
            self.samples.append(self.ids())
            time.sleep(self.interval)

    def wait_empty(self, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while self.ids() and time.monotonic() < deadline:
            time.sleep(0.05)

    def close(self) -> None:
        self.halt.set()
        if self.is_alive():
            self.join()
        self.conn.close()


def log_counts(log: Path, offset: int) -> tuple[int, int, int, int]:
    """(requests failed with 1226, connect retries, give-ups, handoffs) logged after ``offset``."""
    with log.open("rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")
    # Django's request log and backend, or Flask's app log and pa_dbhealth.sqlalchemy.
    failed = r"^(?:django\.request|flask_demo\.app) .*\(1226, "
    ours = r"^pa_dbhealth\.(?:backends\.mysql|sqlalchemy)"
    return (
        len(re.findall(failed, text, re.MULTILINE)),
        len(re.findall(ours + r" connect .* refused", text, re.MULTILINE)),
        len(re.findall(ours + r" gave up", text, re.MULTILINE)),
        len(re.findall(ours + r" .*: took over", text, re.MULTILINE)),
    )


def run_config(config: Config, info: sandbox.SandboxInfo, args: Any, work: Path) -> Result:
    log = work / f"uwsgi-{CONFIGS.index(config)}.log"
    server = Server(config, info, args, log)
    sampler = Sampler(info)
    try:
        server.wait_ready()
        if args.warmup:
            wrk(f"{server.url}/db/", args.warmup, args.clients)
        offset = log.stat().st_size
        sampler.start()
        out = wrk(f"{server.url}/db/", args.duration, args.clients)
    finally:
        sampler.halt.set()
        server.stop()
        sampler.close()
    errors_1226, retries, giveups, handoffs = log_counts(log, offset)
    held = sampler.held()
    with contextlib.closing(Sampler(info)) as after:
        after.wait_empty()
    return Result(
        config=config,
        requests=out["requests"],
        seconds=out["duration"] / 1e6,
        non_2xx=out["status"],
        socket_errors=out["connect"] + out["read"] + out["write"] + out["timeout"],
        p50_ms=out["p50"] / 1000,
        p99_ms=out["p99"] / 1000,
        max_held=max(held, default=0),
        mean_held=statistics.fmean(held) if held else 0.0,
        errors_1226=errors_1226,
        retries=retries,
        giveups=giveups,
        handoffs=handoffs,
    )


@dataclass
class Overhead:
    """The no-database view, a baseline (plain Django) vs a subject (pa_dbhealth): medians
    over the rounds."""

    plain_rate: float  # successful requests/s
    pa_rate: float
    rate_ratio: float  # median of the rounds' pa/plain throughput ratios
    plain_cpu_us: float  # uWSGI's CPU time per successful request
    pa_cpu_us: float
    cpu_ratio: float  # median of the rounds' pa/plain CPU-per-request ratios


def overhead(
    info: sandbox.SandboxInfo,
    args: Any,
    work: Path,
    baseline: Config = PLAIN_0,
    subject: Config = PA,
) -> Overhead:
    """Load the no-database view of ``baseline`` (plain Django) and of ``subject``
    (pa_dbhealth), round after round.

    Both servers run side by side and are loaded one right after the other in each round,
    in alternating order, so a change in the machine's other load hits both alike. Besides
    throughput, uWSGI's own CPU time per request is measured: on a shared machine it
    varies much less than throughput does, which the other tenants' load moves by 10-20 %.
    """
    plain = Server(baseline, info, args, work / "uwsgi-nodb-plain.log")
    pa = Server(subject, info, args, work / "uwsgi-nodb-pa.log")
    rates: dict[str, list[float]] = {"plain": [], "pa": []}
    cpu: dict[str, list[float]] = {"plain": [], "pa": []}
    try:
        plain.wait_ready()
        pa.wait_ready()
        for server in (plain, pa):
            if args.warmup:
                wrk(f"{server.url}/nodb/", args.warmup, args.clients)
        for round_ in range(args.rounds):
            order = (("plain", plain), ("pa", pa))
            for name, server in order if round_ % 2 == 0 else reversed(order):
                before = server.cpu_seconds()
                out = wrk(f"{server.url}/nodb/", args.overhead_seconds, args.clients)
                used = server.cpu_seconds() - before
                ok = out["requests"] - out["status"]
                rates[name].append(ok / (out["duration"] / 1e6))
                cpu[name].append(1e6 * used / ok if ok else float("nan"))
    finally:
        plain.stop()
        pa.stop()
    median = statistics.median
    return Overhead(
        plain_rate=median(rates["plain"]),
        pa_rate=median(rates["pa"]),
        rate_ratio=median(q / p for p, q in zip(rates["plain"], rates["pa"], strict=True)),
        plain_cpu_us=median(cpu["plain"]),
        pa_cpu_us=median(cpu["pa"]),
        cpu_ratio=median(q / p for p, q in zip(cpu["plain"], cpu["pa"], strict=True)),
    )


def flask_version(module: Any) -> str:
    from importlib.metadata import version

    return version(module.__name__.replace("_", "-"))


def machine(info: sandbox.SandboxInfo) -> str:
    import django
    import flask
    import flask_sqlalchemy
    import sqlalchemy

    cpu = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    uwsgi = subprocess.run(
        [uwsgi_binary(), "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} CPUs ({cpu}); Python {platform.python_version()}, "
        f"Django {django.get_version()}, Flask {flask_version(flask)}, Flask-SQLAlchemy "
        f"{flask_version(flask_sqlalchemy)}, SQLAlchemy {sqlalchemy.__version__}, "
        f"uWSGI {uwsgi}, {info.flavour} {info.version}; "
        f"load average before the run: {load}"
    )


def table(results: list[Result], hold: float) -> str:
    bound = LIMIT / hold
    rows = [
        "| configuration | 2xx/s | p50 ms | p99 ms | non-2xx | 1226 errors "
        "| retries | give-ups | handoffs | most held | mean held | held/request ms "
        "| limit 3/hold | of limit |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        rows.append(
            f"| {r.config.name} | {r.ok_per_second:.1f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} "
            f"| {r.non_2xx + r.socket_errors} | {r.errors_1226} | {r.retries} | {r.giveups} "
            f"| {r.handoffs} | {r.max_held} | {r.mean_held:.2f} | {r.held_per_request_ms:.1f} "
            f"| {bound:.0f}/s | {r.ok_per_second / bound:.0%} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=20, help="seconds per configuration")
    parser.add_argument("--hold-ms", type=float, default=20, help="connection hold per request")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=11, help="overhead rounds per server")
    parser.add_argument("--overhead-seconds", type=float, default=2)
    parser.add_argument("--smoke", action="store_true", help="1 s per run: does it work?")
    parser.add_argument(
        "--only",
        type=int,
        nargs="+",
        choices=range(len(CONFIGS)),
        help="configurations by number: "
        + ", ".join(f"{i} {c.name}" for i, c in enumerate(CONFIGS))
        + f" (default: {' '.join(map(str, DEFAULT))})",
    )
    parser.add_argument("--no-overhead", action="store_true", help="skip the no-database view")
    parser.add_argument(
        "--registry-ab",
        action="store_true",
        help="pa_dbhealth without and with its registry of holders, side by side (the "
        "configurations and the no-database view), instead of plain Django against it",
    )
    parser.add_argument("--keep", metavar="DIR", help="keep the uWSGI logs in DIR")
    args = parser.parse_args(argv)
    args.warmup = 1
    if args.smoke:
        args.duration, args.rounds, args.overhead_seconds, args.warmup = 1, 1, 1, 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks

    with (
        tempfile.TemporaryDirectory(prefix="pa_dbhealth-bench-") as tmp,
        started(Path(args.keep or tmp), keep=bool(args.keep)) as info,
    ):
        work = Path(args.keep or tmp)
        print(f"machine: {machine(info)}", flush=True)
        results = []
        chosen = args.only or (REGISTRY_AB if args.registry_ab else DEFAULT)
        for config in [CONFIGS[i] for i in chosen]:
            print(f"running {config.name} for {args.duration:g} s ...", flush=True)
            results.append(run_config(config, info, args, work))
        if not args.no_overhead:
            print(f"running the no-database view, {args.rounds} rounds ...", flush=True)
            pair = (PA_NO_REGISTRY, PA) if args.registry_ab else (PLAIN_0, PA)
            cost = overhead(info, args, work, *pair)
    hold = args.hold_ms / 1000
    print()
    print(
        f"{args.clients} clients, uWSGI {args.processes} processes x {args.threads} threads, "
        f"account capped at {LIMIT}, each request holds its connection {args.hold_ms:g} ms"
    )
    print(table(results, hold))
    if not args.no_overhead:
        base, subject = (
            ("registry off", "registry on")
            if args.registry_ab
            else ("plain Django", "with pa_dbhealth")
        )
        print()
        print(
            f"no-database view, median of {args.rounds} rounds: throughput {base} "
            f"{cost.plain_rate:.0f}/s, {subject} {cost.pa_rate:.0f}/s: "
            f"ratio {cost.rate_ratio:.3f} ({cost.rate_ratio - 1:+.1%})"
        )
        print(
            f"uWSGI CPU time per request: {base} {cost.plain_cpu_us:.0f} us, {subject} "
            f"{cost.pa_cpu_us:.0f} us: ratio {cost.cpu_ratio:.3f} ({cost.cpu_ratio - 1:+.1%})"
        )
    return 0


@contextlib.contextmanager
def started(work: Path, *, keep: bool) -> Iterator[sandbox.SandboxInfo]:
    info = sandbox.start(work / "db")
    try:
        yield info
    finally:
        sandbox.stop(info, remove=not keep)


if __name__ == "__main__":
    sys.exit(main())
