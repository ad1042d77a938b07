"""How many requests the web server can run at once: each may hold a connection per alias."""

from __future__ import annotations

import functools
import logging
from typing import Any, NamedTuple

logger = logging.getLogger("pa_dbhealth.parking")


class Workers(NamedTuple):
    number: int | None  # None: unknown
    source: str  # "PA_DBHEALTH['WORKERS']", "uWSGI (4 processes x 2 threads)" or "unknown"


def _option(options: dict[Any, Any], name: str) -> int:
    value = options.get(name, options.get(name.encode()))
    if isinstance(value, list):  # repeated options come as a list
        value = value[-1]
    if isinstance(value, bytes):
        value = value.decode()
    try:
        return max(int(value), 1) if value not in (None, True) else 1
    except (TypeError, ValueError):
        return 1


def uwsgi_workers(options: dict[Any, Any]) -> tuple[int, int]:
    """``(processes, threads)`` from uWSGI's option dict (``uwsgi.opt``)."""
    processes = _option(options, "processes")
    if processes == 1 and ("workers" in options or b"workers" in options):
        processes = _option(options, "workers")
    return processes, _option(options, "threads")


def concurrent_workers(configured: int | None, setting: str = "PA_DBHEALTH['WORKERS']") -> Workers:
    """``configured`` (the WORKERS option, named ``setting``) when set, else uWSGI's."""
    if configured is not None:
        return Workers(configured, setting)
    try:
        import uwsgi
    except ImportError:
        return Workers(None, "unknown")
    processes, threads = uwsgi_workers(dict(uwsgi.opt))
    return Workers(processes * threads, f"uWSGI ({processes} processes x {threads} threads)")


@functools.cache
def threads_run_between_requests() -> bool:
    """Whether a background thread of this process runs while it waits for requests: not
    under uWSGI without ``--enable-threads`` and with one thread per process (uWSGI then
    keeps the GIL while it waits). Asked at the end of each request with PARK: the answer
    is kept (uWSGI's options are the same for the life of its workers), and a "no" is said
    once per process, as a warning: PARK then does nothing."""
    try:
        import uwsgi
    except ImportError:
        return True
    options = dict(uwsgi.opt)
    enabled = options.get("enable-threads", options.get(b"enable-threads"))
    if enabled or uwsgi_workers(options)[1] > 1:
        return True
    logger.warning(
        "PARK has no effect here: uWSGI runs one thread per process without "
        "--enable-threads, so nothing could give a parked connection up between requests; "
        "each request connects. Add enable-threads = true to the uWSGI configuration."
    )
    return False
