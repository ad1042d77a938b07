"""``engine_options(url, workers=...)``: the ``create_engine`` arguments that fit the live
server, for whoever asks "what should I write?"."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from pa_dbhealth.core import vendors
from pa_dbhealth.core.errors import classify
from pa_dbhealth.core.options import Options, effective
from pa_dbhealth.core.timeouts import idle_limit
from pa_dbhealth.sqlalchemy.engine_look import LookTimedOut, look_at_engine
from pa_dbhealth.sqlalchemy.engines import database_errors, engine_vendor
from pa_dbhealth.sqlalchemy.sizing import concurrency, fitting_options

__all__ = ["engine_options"]

logger = logging.getLogger("pa_dbhealth.sqlalchemy")


def engine_options(
    url: str | URL,
    *,
    workers: int | None = None,
    options: Options | Mapping[str, Any] | None = None,
    connect_args: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``create_engine(url, **engine_options(url, workers=...))`` (or
    Flask-SQLAlchemy's ``SQLALCHEMY_ENGINE_OPTIONS``) whose pools, in all the site's
    processes together, stay within the account's live cap (one connection left free where
    that still leaves each process one), with ``pool_recycle`` below the server's idle
    timeout minus ``TIMEOUT_MARGIN``; ``{"poolclass": NullPool}`` when not even one pooled
    connection per process fits (then ``install()`` makes connects wait at the cap).

    ``workers``: web worker processes (default ``options['WORKERS']``, then uWSGI's
    processes and threads). The server is asked once, bounded by
    ``HEALTH_CONNECT_TIMEOUT``; when it cannot be asked, ``SERVER_IDLE_TIMEOUT`` and
    ``CONNECTION_LIMIT`` are used and a warning is logged.
    """
    opts = options if isinstance(options, Options) else effective(options)
    probe = create_engine(url, poolclass=NullPool, connect_args=dict(connect_args or {}))
    timeout: int | None = opts.SERVER_IDLE_TIMEOUT
    cap: int | None = opts.CONNECTION_LIMIT
    errors: tuple[type[BaseException], ...] = (LookTimedOut, *database_errors(probe))
    try:
        if vendors.is_applicable(engine_vendor(probe)):
            facts = look_at_engine(probe, vendors.server_facts, timeout=opts.HEALTH_CONNECT_TIMEOUT)
            timeout, cap = facts.wait_timeout, facts.account_limit
        else:
            timeout = cap = None
    except errors as exc:
        detail = str(exc) if isinstance(exc, LookTimedOut) else classify(exc).short
        logger.warning(
            "engine_options: could not ask the server of %s (%s): using SERVER_IDLE_TIMEOUT=%s "
            "and CONNECTION_LIMIT=%s",
            probe.url.render_as_string(hide_password=True),
            detail,
            opts.SERVER_IDLE_TIMEOUT,
            opts.CONNECTION_LIMIT,
        )
    finally:
        probe.dispose()
    limit = None if timeout is None else idle_limit(timeout, opts.TIMEOUT_MARGIN).seconds
    if cap is None:  # no per-account cap: only the recycle matters
        return {} if limit is None else {"pool_recycle": int(limit)}
    how = concurrency(workers if workers is not None else opts.WORKERS, "workers=")
    return fitting_options(cap, opts.TASK_CONNECTIONS, how, limit)
