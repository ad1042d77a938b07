"""How much ConnectionHygieneMiddleware adds to a view that does not use the database.

Runs many requests through Django's WSGI handler in this process, with and without the
middleware (pa_dbhealth installed in both), alternating short blocks, and prints the median time
per request of each and their ratio. Not a test: run it on a quiet machine.

    .venv/bin/python bench/middleware_overhead.py [--requests 2000] [--rounds 101]
"""

from __future__ import annotations

import argparse
import io
import platform
import statistics
import sys
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


def configure() -> None:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-only",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=["pa_dbhealth"],
        DATABASES={
            # A MySQL alias and a SQLite one that the view never opens, as on a real site.
            "default": {"ENGINE": "django.db.backends.mysql", "NAME": "app", "PORT": "9"},
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


def per_request(run: Callable[[], None], count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        run()
    return (time.perf_counter() - start) / count


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per block")
    parser.add_argument("--rounds", type=int, default=101, help="pairs of blocks")
    args = parser.parse_args()
    configure()
    plain = handler([])
    hygiene = handler(["pa_dbhealth.middleware.ConnectionHygieneMiddleware"])
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
    print(f"machine: {cpu_model()}, {cpus} CPU(s) available")
    print(f"Python {platform.python_version()}, Django {django.get_version()}")
    print(f"{args.rounds} pairs of {args.requests}-request blocks, medians per request:")
    print(f"  plain Django:              {plain_s * 1e6:8.2f} us")
    print(f"  with the hygiene middleware: {hygiene_s * 1e6:6.2f} us")
    print(f"  ratio (median of pairs): {ratio:.4f} ({(ratio - 1) * 100:+.2f} %)")


if __name__ == "__main__":
    sys.exit(main())
