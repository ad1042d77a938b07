"""PgBouncer's pool of 3 against a direct cap of 3: the same Django site, the same load.

    .venv/bin/python bench/pgbouncer_vs_cap.py [--duration 10] [--clients 8]

Starts the tests' throwaway PostgreSQL (a role capped at 3 connections) and a PgBouncer in
front of it (transaction mode, a pool of 3; ``tests/pgserver.py``, ``tests/pgbouncer.py``),
then serves ``bench/benchsite`` (plain Django, ``CONN_MAX_AGE = 0``) under uWSGI (4
processes x 2 threads) connecting to PostgreSQL, then to PgBouncer (and once more with
``CONN_MAX_AGE = 600``: client connections kept), driven by wrk against the view that holds
its connection ``--hold-ms``. Prints one row each.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "bench")]

import pgbouncer  # noqa: E402 (the tests' helpers, by path)
import pgserver  # noqa: E402
from loadbench import machine  # noqa: E402
from loadbench.configs import Config  # noqa: E402
from loadbench.servers import Server  # noqa: E402
from loadbench.wrk import WrkResult, wrk  # noqa: E402

PLAIN_PG = Config("plain Django, CONN_MAX_AGE=0", "django.db.backends.postgresql", 0, False, False)
# Behind a pooler a client connection is cheap to keep: no login per request.
KEPT_PG = Config(
    "plain Django, CONN_MAX_AGE=600", "django.db.backends.postgresql", 600, False, False
)


class Target:
    """Where the site connects, as the environment ``Server`` passes on (``DB_*``)."""

    def __init__(self, pg: pgserver.PgServer, port: int) -> None:
        self.pg, self.port = pg, port

    def env(self) -> dict[str, str]:
        pg = self.pg
        return {
            "DB_HOST": pg.host,
            "DB_PORT": str(self.port),
            "DB_NAME": pg.database,
            "DB_USER": pg.user,
            "DB_PASSWORD": pg.password,
        }


def load(
    target: Target, args: argparse.Namespace, log: Path, config: Config = PLAIN_PG
) -> WrkResult:
    server = Server(config, target, args, log)  # type: ignore[arg-type]
    try:
        server.wait_ready()
        wrk(f"{server.url}/db/", 1, args.clients)  # warm up
        return wrk(f"{server.url}/db/", args.duration, args.clients)
    finally:
        server.stop()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=10)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--hold-ms", type=float, default=20)
    p.add_argument("--processes", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    before = machine.load_average()
    pg = pgserver.start()
    try:
        bouncer = pgbouncer.start(pg)
        try:
            with tempfile.TemporaryDirectory(prefix="pa_dbhealth-bench-pgb-") as tmp:
                work = Path(tmp)
                direct, pooled = Target(pg, pg.port), Target(pg, bouncer.port)
                rows = [
                    ("PostgreSQL directly, role capped at 3", load(direct, args, work / "a.log")),
                    ("PgBouncer, transaction mode, pool of 3", load(pooled, args, work / "b.log")),
                    (
                        "PgBouncer, pool of 3, CONN_MAX_AGE = 600",
                        load(pooled, args, work / "c.log", KEPT_PG),
                    ),
                ]
        finally:
            pgbouncer.stop(bouncer)
    finally:
        pgserver.stop(pg)
    limit = 3 / (args.hold_ms / 1000)
    print(
        f"\nuWSGI {args.processes} x {args.threads}, {args.clients} clients, each request "
        f"holds its connection {args.hold_ms:g} ms (limit {limit:g}/s), {args.duration:g} s; "
        f"{machine.cpu_model()}, load average {before} at the start, "
        f"{machine.load_average()} at the end\n"
    )
    print("| | 2xx/s | of the limit | p99 | failed requests |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, result in rows:
        rate = result.ok_per_second
        failed = result.non_2xx + result.socket_errors
        print(
            f"| {name} | {rate:.1f} | {100 * rate / limit:.0f} % | {result.p99_ms:.0f} ms | "
            f"{failed} |"
        )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
