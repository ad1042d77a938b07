"""How much ConnectionHygieneMiddleware adds to a view that does not use the database.

Runs many requests through Django's WSGI handler in this process, with and without the
middleware (pa_dbhealth installed in both), alternating rounds, and prints the median time
per request of each and their ratio. Not a test: run it on a quiet machine.

    .venv/bin/python bench/middleware_overhead.py [--requests 20000] [--rounds 15]
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
    parser.add_argument("--requests", type=int, default=20000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    configure()
    plain = handler([])
    hygiene = handler(["pa_dbhealth.middleware.ConnectionHygieneMiddleware"])
    for run in (plain, hygiene):
        per_request(run, 2000)  # warm up
    times: dict[str, list[float]] = {"plain": [], "hygiene": []}
    for round_ in range(args.rounds):
        order = [("plain", plain), ("hygiene", hygiene)]
        for name, run in order if round_ % 2 == 0 else reversed(order):
            times[name].append(per_request(run, args.requests))
    plain_s = statistics.median(times["plain"])
    hygiene_s = statistics.median(times["hygiene"])
    cpus = len(__import__("os").sched_getaffinity(0))
    print(f"machine: {cpu_model()}, {cpus} CPU(s) available")
    print(f"Python {platform.python_version()}, Django {django.get_version()}")
    print(f"{args.rounds} rounds of {args.requests} requests, medians per request:")
    print(f"  plain Django:              {plain_s * 1e6:8.2f} us")
    print(f"  with the hygiene middleware: {hygiene_s * 1e6:6.2f} us")
    print(f"  ratio: {hygiene_s / plain_s:.4f} ({(hygiene_s / plain_s - 1) * 100:+.2f} %)")


if __name__ == "__main__":
    sys.exit(main())
