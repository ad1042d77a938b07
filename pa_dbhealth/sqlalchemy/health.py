"""How healthy an engine's database is right now: one bounded look (``look``), judged by
``core.health``; the Flask health view renders it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import Engine

from pa_dbhealth.core import vendors
from pa_dbhealth.core.errors import classify
from pa_dbhealth.core.health import DatabaseHealth, Report, Status, failed, judge, timed_out
from pa_dbhealth.core.options import Options, effective
from pa_dbhealth.sqlalchemy.engine_look import LookTimedOut, look_at_engine
from pa_dbhealth.sqlalchemy.engines import database_errors, engine_vendor

__all__ = ["check", "probe"]


def probe(
    engine: Engine, name: str = "default", *, options: Options | Mapping[str, Any] | None = None
) -> DatabaseHealth:
    """Count the account's connections on the engine's server and judge them. Never raises
    a database error: a failure is a critical result naming it. Answers within
    ``HEALTH_CONNECT_TIMEOUT`` for the connect and as long again for the answer; the
    connection it opens is its own, closed before it returns."""
    opts = options if isinstance(options, Options) else effective(options)
    vendor = engine_vendor(engine)
    if not vendors.is_applicable(vendor):
        note = vendors.not_applicable(vendor, engine.dialect.name).note
        return DatabaseHealth(name, vendor, Status.OK, applicable=False, note=note)
    try:
        snapshot = look_at_engine(
            engine, vendors.account_snapshot, timeout=opts.HEALTH_CONNECT_TIMEOUT
        )
    except LookTimedOut as exc:
        return timed_out(name, vendor, exc.seconds)
    except database_errors(engine) as exc:
        return failed(name, vendor, classify(exc))
    status, reasons = judge(snapshot, opts.TIMEOUT_MARGIN)
    return DatabaseHealth(name, vendor, status, snapshot=snapshot, reasons=reasons)


def check(
    engines: Mapping[str, Engine], *, options: Options | Mapping[str, Any] | None = None
) -> Report:
    """Probe each engine (by the name its report gives it), one after the other."""
    return Report([probe(engine, name, options=options) for name, engine in engines.items()])
