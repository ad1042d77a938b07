"""What the zero-round-trip liveness check costs, beside the ping it makes unnecessary.

Starts its own capped MariaDB (``pa_dbhealth.sandbox``), opens one connection with each
driver installed (mysqlclient, PyMySQL, psycopg against a PostgreSQL when one is given with
``--pg-url``) and prints, per call, the median of ``--rounds`` timed blocks:

- ``liveness.is_dead`` (a zero-timeout poll on the socket), what pa_dbhealth runs before
  reusing a connection;
- ``liveness.in_transaction`` (the driver's status flags), what the handoff runs;
- a ping round trip (``SELECT 1``), what ``CONN_HEALTH_CHECKS`` and ``pool_pre_ping`` cost.

    .venv/bin/python bench/liveness.py [--calls 20000] [--rounds 21]

Not a test: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

from pa_dbhealth import sandbox
from pa_dbhealth.core import liveness


def per_call_us(work: Callable[[], Any], calls: int, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(calls):
            work()
        samples.append((time.perf_counter() - started) / calls * 1e6)
    return statistics.median(samples)


def ping(connection: Any) -> Callable[[], None]:
    def run() -> None:
        cursor = connection.cursor()
        cursor.execute("SELECT 1")
        cursor.fetchall()
        cursor.close()

    return run


def connections(info: sandbox.SandboxInfo, pg_url: str | None) -> dict[str, Any]:
    found: dict[str, Any] = {"mysqlclient": info.connect(autocommit=True)}
    try:
        import pymysql

        found["PyMySQL"] = pymysql.connect(
            host=info.host,
            port=info.port,
            user=info.user,
            password=info.password,
            database=info.database,
            autocommit=True,
        )
    except ImportError:
        pass
    if pg_url:
        import psycopg

        found["psycopg"] = psycopg.connect(pg_url, autocommit=True)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--pg-url", help="a PostgreSQL to measure psycopg against")
    args = parser.parse_args()
    info = sandbox.start()
    try:
        machine = platform.processor() or platform.machine()
        print(f"# {machine}, Python {platform.python_version()}, {info.flavour} {info.version}")
        print(f"# on loopback; median of {args.rounds} blocks of {args.calls} calls")
        print("| driver | is_dead µs | in_transaction µs | ping (SELECT 1) µs | ping / is_dead |")
        print("|---|---:|---:|---:|---:|")
        for name, connection in connections(info, args.pg_url).items():
            dead = per_call_us(lambda c=connection: liveness.is_dead(c), args.calls, args.rounds)
            trans = per_call_us(
                lambda c=connection: liveness.in_transaction(c), args.calls, args.rounds
            )
            pinged = per_call_us(ping(connection), args.calls // 20, args.rounds)
            print(f"| {name} | {dead:.2f} | {trans:.2f} | {pinged:.1f} | {pinged / dead:.0f}x |")
            connection.close()
    finally:
        sandbox.stop(info)


if __name__ == "__main__":
    main()
