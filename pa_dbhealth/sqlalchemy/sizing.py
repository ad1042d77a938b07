"""How many connections a site's pools may open at once, and the pool that fits a cap.

Each process has its own pool. A pool with a limit (QueuePool's ``pool_size +
max_overflow``, StaticPool's one) may open that many per process, whatever the code does
(a leaked session, two sessions at once); a pool without one (NullPool,
SingletonThreadPool) opens one per thread that uses it. The processes and threads come
from uWSGI's options when the site runs under uWSGI; a number of workers given otherwise
(``workers=``, ``PA_DBHEALTH['WORKERS']``) counts each worker as a process of its own, as
PythonAnywhere's web workers are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.pool import NullPool

from pa_dbhealth.core.workers import uwsgi_workers
from pa_dbhealth.sqlalchemy.pools import PoolShape


@dataclass(frozen=True)
class Concurrency:
    processes: int | None  # None: unknown
    threads: int  # per process
    source: str  # where the figures come from, for messages

    @property
    def known(self) -> bool:
        return self.processes is not None


def concurrency(workers: int | None, setting: str) -> Concurrency:
    """``workers`` (named ``setting`` in messages) as single-threaded processes; else uWSGI's
    processes and threads; else unknown."""
    if workers is not None:
        return Concurrency(workers, 1, f"{workers} worker(s) from {setting}")
    try:
        import uwsgi
    except ImportError:
        return Concurrency(None, 1, "unknown")
    processes, threads = uwsgi_workers(dict(uwsgi.opt))
    return Concurrency(processes, threads, f"uWSGI ({processes} processes x {threads} threads)")


def per_process(shape: PoolShape, threads: int) -> int:
    """Connections one process's pool may hold at once."""
    return shape.capacity if shape.capacity is not None else threads


def fitting_options(
    cap: int, tasks: int, how: Concurrency, idle_limit: float | None
) -> dict[str, Any]:
    """``create_engine`` keyword arguments whose pools, in every process together, stay
    within ``cap`` minus ``tasks`` (one connection left free when that still leaves each
    process one): a QueuePool of ``k`` per process (``pool_size`` ``k - 1`` or 1, the rest
    overflow, so idle connections are few), ``pool_recycle`` at the idle limit. When not
    even one per process fits (more processes than connections), NullPool: connections are
    held only while used, and ``install()`` makes a connect wait at the cap."""
    budget = cap - tasks
    if how.processes is None:  # unknown: one connection per process fits the most processes
        per = min(budget, 1)
    else:
        per = (budget - 1) // how.processes or budget // how.processes
        per = min(per, how.threads)
    if per < 1:
        # NullPool never reuses a connection, so its rollback on return is one round trip
        # for nothing: the ORM's session has rolled back already, a connection closed with
        # a transaction open is rolled back by the server, and install()'s handoff passes
        # on only a connection with no transaction open.
        return {"poolclass": NullPool, "pool_reset_on_return": None}
    size = max(per - 1, 1)
    fitting: dict[str, Any] = {"pool_size": size, "max_overflow": per - size}
    if idle_limit is not None and idle_limit != float("inf"):
        fitting["pool_recycle"] = int(idle_limit)
    return fitting
