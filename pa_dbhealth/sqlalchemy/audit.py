"""``audit(engine)``: an engine's pool held against the live server's idle timeout and the
account's connection cap, in the catalogue's findings (``dbcheck``'s ids).

The server is asked once (one bounded look on a connection of the audit's own, two round
trips); then the pool is judged for what it is (``pools``): how many connections each
process's pool may open against the cap (E009, and with the number of processes E007 /
W008 / I019), how long it keeps them against the server's idle timeout (E004 / E005),
whether a dropped connection is noticed before use (W006); plus the findings every face
shares (I012, I015, I020, W014, W016, E011, E018). The fix is written as the options
that fit (``sizing.fitting_options``, what ``engine_options`` returns).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from pa_dbhealth.core import findings, vendors
from pa_dbhealth.core.audit import (
    Audit,
    Limits,
    Terms,
    judge_limits,
    queue_fix,
    server_findings,
    workers_fix,
)
from pa_dbhealth.core.errors import server_address
from pa_dbhealth.core.findings import Finding
from pa_dbhealth.core.look import Asked, ask_server
from pa_dbhealth.core.options import Options, effective
from pa_dbhealth.sqlalchemy import behind
from pa_dbhealth.sqlalchemy.engine_look import look_at_engine
from pa_dbhealth.sqlalchemy.engines import database_errors, engine_key, engine_vendor
from pa_dbhealth.sqlalchemy.events import installed
from pa_dbhealth.sqlalchemy.pools import PoolShape, shape
from pa_dbhealth.sqlalchemy.sizing import Concurrency, concurrency, fitting_options, per_process
from pa_dbhealth.sqlalchemy.wording import PLAIN, Wording

__all__ = ["audit", "report"]


class Judged(NamedTuple):
    """What an engine's pool and budget findings are judged on, and how they are worded."""

    who: str
    pool: PoolShape
    vendor: str
    wording: Wording
    fitting: dict[str, Any]
    is_installed: bool


def report(
    engine: Engine,
    *,
    name: str | None = None,
    workers: int | None = None,
    options: Options | Mapping[str, Any] | None = None,
    wording: Wording = PLAIN,
    offline: bool = False,
) -> Audit:
    """The audit of one engine with the server's figures (what ``dbcheck`` prints).

    ``name`` is what messages call the engine (default: its URL without the password);
    ``workers`` the site's web workers (default: ``options['WORKERS']``, then uWSGI's);
    ``options`` the ``PA_DBHEALTH`` keys; ``offline`` asks nothing and judges by
    ``SERVER_IDLE_TIMEOUT`` and ``CONNECTION_LIMIT``.
    """
    opts = options if isinstance(options, Options) else effective(options)
    label = name or engine_key(engine)
    who = repr(label)
    vendor = engine_vendor(engine)
    terms = wording.terms
    if not vendors.is_applicable(vendor):
        return Audit.not_applicable(label, vendor, engine.dialect.name)
    result = Audit(label, vendor)
    asked = (
        Asked(None, None, terms.offline_flag) if offline else _ask(engine, result, who, opts, terms)
    )
    if asked is None:
        return result  # what the options would mean for a server not seen can wait
    facts, snapshot = asked.facts, asked.snapshot
    where = (str(engine.url.host or ""), str(engine.url.port or ""))
    reason = asked.reason or terms.offline_flag
    limits = judge_limits(result, who, facts, snapshot, opts, reason, terms, where)
    given = workers if workers is not None else opts.WORKERS
    setting = "the workers argument" if workers is not None else terms.option("WORKERS")
    how = concurrency(given, setting)
    fitting = fitting_options(
        limits.cap or opts.CONNECTION_LIMIT, opts.TASK_CONNECTIONS, how, limits.idle_limit
    )
    judged = Judged(who, shape(engine), vendor, wording, fitting, installed(engine) is not None)
    result.findings += _pool_findings(judged, limits)
    # Behind a multiplexer the processes' connections are its clients: no budget.
    if not (facts is not None and behind.judge_behind(engine, who, opts, result, wording)):
        queues = bool(opts.LINE) and opts.CONNECT_RETRY > 0
        result.findings += _budget(judged, limits.cap, how, opts.TASK_CONNECTIONS, queues)
    if facts is not None and snapshot is not None:
        kill_flag = f"--bind {wording.bind} " if wording.bind is not None else ""
        result.findings += server_findings(who, facts, snapshot, limits.timeout, terms, kill_flag)
    return result


def _ask(engine: Engine, result: Audit, who: str, opts: Options, terms: Terms) -> Asked | None:
    """``core.look.ask_server`` through a look at the engine's server."""
    return ask_server(
        result,
        who,
        server_address(engine.url.host, engine.url.port),
        terms,
        lambda ask: look_at_engine(engine, ask, timeout=opts.HEALTH_CONNECT_TIMEOUT),
        database_errors(engine),
    )


def audit(
    engine: Engine,
    *,
    workers: int | None = None,
    options: Options | Mapping[str, Any] | None = None,
    wording: Wording = PLAIN,
) -> list[Finding]:
    """The findings about ``engine``, most severe first (``dbcheck --format json``'s)."""
    return report(engine, workers=workers, options=options, wording=wording).sorted_findings()


def _pool_findings(judged: Judged, limits: Limits) -> list[Finding]:
    who, pool, vendor = judged.who, judged.pool, judged.vendor
    wording, fitting = judged.wording, judged.fitting
    found = []
    subject = f"The engine {who}"
    cap, timeout, limit = limits.cap, limits.timeout, limits.idle_limit
    if pool.size is not None and cap is not None and (pool.capacity is None or pool.capacity > cap):
        fix = (
            f"Set {wording.write(fitting)}: pool_size + max_overflow per process, times the "
            "processes, within the cap."
        )
        found.append(
            findings.pool_too_big(subject, pool.kind, pool.size, pool.overflow or 0, cap, fix)
        )
    if pool.keeps and timeout is not None:
        setting = wording.setting("pool_recycle")
        recycle = int(limit) if limit != float("inf") else timeout
        fix = (
            f"Set pool_recycle to {recycle} or less (the server's {timeout} s minus "
            f"TIMEOUT_MARGIN): {wording.write(fitting)}."
        )
        if pool.recycle < 0:
            shown = "-1" + wording.recycle_note
            found.append(findings.kept_forever(setting, shown, timeout, vendor, fix))
        elif pool.recycle > limit:
            shown = f"{pool.recycle:g}" + wording.recycle_note
            found.append(findings.kept_past_timeout(setting, shown, timeout, vendor, fix))
    if pool.keeps and not pool.pre_ping and not judged.is_installed:
        found.append(
            findings.kept_untested(
                f"{subject} keeps connections in its {pool.kind} without pool_pre_ping or "
                "pa_dbhealth's checkout check",
                f"Call {wording.install} (a socket check at each checkout, no round trip), "
                f"or set {wording.set_one('pool_pre_ping', True)} (one round trip per checkout).",
            )
        )
    return found


def _budget(
    judged: Judged, cap: int | None, how: Concurrency, tasks: int, queues: bool
) -> list[Finding]:
    """E007/W008/W022/I019: the connections every process's pool may open against the cap
    (``queues``: a refused connect waits in the account's line, LINE and CONNECT_RETRY)."""
    if cap is None:
        return []
    who, pool, vendor, terms = judged.who, judged.pool, judged.vendor, judged.wording.terms
    if how.processes is None:
        return [findings.workers_unknown(who, cap, workers_fix(terms))]
    per = per_process(pool, how.threads)
    need = how.processes * per + tasks
    why = pool.describe if pool.capacity is not None else f"{pool.kind}, one per thread"
    breakdown = f"{how.source}, up to {per} connection(s) per process: {why}"
    if tasks:
        breakdown += f" + {tasks} task connection(s)"
    if need > cap and judged.is_installed and pool.kind == "NullPool" and queues:
        allowed = max(cap - tasks, 0) // max(how.threads or 1, 1)
        return [findings.budget_queues(who, need, breakdown, cap, queue_fix(allowed, terms))]
    if need > cap:
        fix = _budget_fix(judged, cap, how, tasks)
        return [findings.budget_over_cap(who, need, breakdown, cap, fix, vendor)]
    if need == cap:
        fix = _budget_fix(judged, cap, how, tasks)
        return [findings.budget_at_cap(who, need, breakdown, cap, fix, vendor)]
    return []


def _budget_fix(judged: Judged, cap: int, how: Concurrency, tasks: int) -> str:
    """E007's and W008's fix: the options that fit, or NullPool with pa_dbhealth's wait."""
    wording, fitting = judged.wording, judged.fitting
    if fitting.get("poolclass") is NullPool:
        return (
            f"Run at most {max(cap - tasks, 0)} worker process(es), or use "
            f"{wording.write(fitting)} with {wording.install}: a connection is held only while "
            "it is used, and a connect refused by the cap waits (CONNECT_RETRY) instead of "
            "failing; a sustained overload still fails."
        )
    wait = (
        ""
        if judged.is_installed
        else f" {wording.install} makes a connect refused by the cap wait for a free connection."
    )
    fit = int(fitting["pool_size"]) + int(fitting["max_overflow"])
    return (
        f"Set {wording.write(fitting)}: {how.processes} process(es) x {fit} connection(s) "
        f"stay within the cap of {cap}.{wait}"
    )
