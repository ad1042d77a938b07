"""How much ConnectionHygieneMiddleware adds to a view that does not use the database.

Runs many requests through Django's WSGI handler in this process, with and without the
middleware (pa_dbhealth installed in both), alternating short blocks, and prints the median time
per request of each and their ratio. Not a test: run it on a quiet machine.

    .venv/bin/python bench/middleware_overhead.py [--requests 2000] [--rounds 101]
    .venv/bin/python bench/middleware_overhead.py --instructions [--requests 1000]

``--instructions`` counts machine instructions instead of timing (valgrind's callgrind,
the same count on every run, whatever else the machine is doing), of plain Django (no
pa_dbhealth at all) against pa_dbhealth as a site installs it (the app, its backend and
the middleware): each side runs in its own process under callgrind, once with and once
without the measured requests, and the difference divided by the number of requests is
that side's cost per request. ``bench/load.py`` runs it too, where valgrind is installed.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import django
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import path


def no_database(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


urlpatterns = [path("", no_database)]


HYGIENE = "pa_dbhealth.middleware.ConnectionHygieneMiddleware"


def configure(app: bool = True, engine: str = "django.db.backends.mysql") -> None:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-only",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=["pa_dbhealth"] if app else [],
        DATABASES={
            # A MySQL alias and a SQLite one that the view never opens, as on a real site.
            "default": {"ENGINE": engine, "NAME": "app", "PORT": "9"},
            "other": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
        },
        MIDDLEWARE=[],
    )
    django.setup()


def handler(middleware: list[str]) -> Callable[[], None]:
    from django.core.handlers.wsgi import WSGIHandler

    settings.MIDDLEWARE = middleware
    app = WSGIHandler()
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "SERVER_NAME": "bench",
        "SERVER_PORT": "80",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.url_scheme": "http",
    }

    def start_response(status: str, headers: Any) -> None:
        assert status.startswith("200")

    def one() -> None:
        for _ in app(dict(environ), start_response):
            pass

    return one


def machine() -> str:
    """The CPU, for the report. Imported here, in the parent only: a child under callgrind
    imports nothing but Django (and pa_dbhealth on its side), since every module imported
    adds objects that the garbage collector walks, which shows in the count per request."""
    from loadbench.machine import cpu_model

    return cpu_model()


def per_request(run: Callable[[], None], count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        run()
    return (time.perf_counter() - start) / count


# The --instructions sides: (app installed, ENGINE, MIDDLEWARE).
SIDES = {
    "plain": (False, "django.db.backends.mysql", []),
    "pa_dbhealth": (True, "pa_dbhealth.backends.mysql", [HYGIENE]),
}
WARM_UP = 500


def child(side: str, requests: int) -> None:
    """One side's run under callgrind: set up, warm up, then ``requests`` requests."""
    app, engine, middleware = SIDES[side]
    configure(app, engine)
    run = handler(middleware)
    for _ in range(WARM_UP + requests):
        run()


def instructions(side: str, requests: int) -> int:
    """Instructions callgrind counts for the whole of ``child(side, requests)``."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("valgrind is not installed: `apt-get install valgrind`")
    cmd = [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    cmd += [sys.executable, __file__, "--child", side, str(requests)]
    with tempfile.TemporaryDirectory(prefix="pa_dbhealth-bench-") as registry:
        env = {
            **os.environ,
            "PYTHONHASHSEED": "0",  # the same dicts, the same probes
            "PA_DBHEALTH_REGISTRY_DIR": registry,  # not the user's
        }
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    match = re.search(r"Collected : (\d+)", out.stderr)
    if not match:
        raise SystemExit(f"no instruction count in callgrind's output:\n{out.stderr}")
    return int(match.group(1))


def instructions_per_request(requests: int) -> dict[str, float]:
    """Each side's instructions per request of the no-database view."""
    per: dict[str, float] = {}
    for side in SIDES:
        base, loaded = instructions(side, 0), instructions(side, requests)
        per[side] = (loaded - base) / requests
    return per


def count_instructions(requests: int) -> None:
    per = instructions_per_request(requests)
    ratio = per["pa_dbhealth"] / per["plain"]
    print(
        f"machine: {machine()}; Python {platform.python_version()}, Django {django.get_version()}"
    )
    print(f"instructions per request (callgrind, {requests} requests after {WARM_UP}):")
    print(f"  plain Django:     {per['plain']:10.0f}")
    print(f"  with pa_dbhealth: {per['pa_dbhealth']:10.0f}")
    print(f"  ratio: {ratio:.4f} ({(ratio - 1) * 100:+.2f} %)")


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=None, help="requests per block")
    parser.add_argument("--rounds", type=int, default=101, help="pairs of blocks")
    parser.add_argument(
        "--instructions", action="store_true", help="count instructions under valgrind"
    )
    args = parser.parse_args()
    if args.instructions:
        count_instructions(args.requests or 1000)
        return
    args.requests = args.requests or 2000
    configure()
    plain = handler([])
    hygiene = handler([HYGIENE])
    for run in (plain, hygiene):
        per_request(run, 2000)  # warm up
    # Short alternating blocks, so both sides see the same machine noise; the ratio is the
    # median of the per-pair ratios.
    pairs: list[tuple[float, float]] = []
    for round_ in range(args.rounds):
        if round_ % 2 == 0:
            plain_s, hygiene_s = (
                per_request(plain, args.requests),
                per_request(hygiene, args.requests),
            )
        else:
            hygiene_s, plain_s = (
                per_request(hygiene, args.requests),
                per_request(plain, args.requests),
            )
        pairs.append((plain_s, hygiene_s))
    plain_s = statistics.median(p for p, _ in pairs)
    hygiene_s = statistics.median(h for _, h in pairs)
    ratio = statistics.median(h / p for p, h in pairs)
    cpus = len(__import__("os").sched_getaffinity(0))
    print(f"machine: {machine()}, {cpus} CPU(s) available")
    print(f"Python {platform.python_version()}, Django {django.get_version()}")
    print(f"{args.rounds} pairs of {args.requests}-request blocks, medians per request:")
    print(f"  plain Django:              {plain_s * 1e6:8.2f} us")
    print(f"  with the hygiene middleware: {hygiene_s * 1e6:6.2f} us")
    print(f"  ratio (median of pairs): {ratio:.4f} ({(ratio - 1) * 100:+.2f} %)")


if __name__ == "__main__":
    sys.exit(main())
