"""pa_dbhealth.sqlalchemy.audit and engine_options against the real capped server: each
finding triggered by a real engine, absent once the engine is fixed as the hint says."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from conftest import sqlalchemy_url
from sqlalchemy.pool import AssertionPool, NullPool, SingletonThreadPool, StaticPool

from pa_dbhealth import sandbox
from pa_dbhealth.sqlalchemy import audit, engine_options, install, report
from pa_dbhealth.sqlalchemy.wording import flask_wording

pytestmark = pytest.mark.matrix_once  # the same on every Django version


def ids(engine: Any, **kwargs: Any) -> list[str]:
    return [f.id for f in audit(engine, **kwargs)]


def finding(engine: Any, wanted: str, **kwargs: Any) -> Any:
    (found,) = [f for f in audit(engine, **kwargs) if f.id == wanted]
    return found


def test_the_seeds_engine_fails_with_the_exact_fix(make_engine: Callable[..., Any]) -> None:
    engine = make_engine()  # create_engine(url): QueuePool 5 + 10, pool_recycle unset
    found = ids(engine, workers=2)
    assert {"pa_dbhealth.E005", "pa_dbhealth.E007", "pa_dbhealth.E009", "pa_dbhealth.W006"} <= set(
        found
    )
    e009 = finding(engine, "pa_dbhealth.E009", workers=2)
    assert "uses QueuePool with up to 15 connections per process (size 5 + overflow 10)" in (
        e009.message
    )
    assert "may hold 3" in e009.message
    fix = "create_engine(url, pool_size=1, max_overflow=0, pool_recycle=280)"
    assert fix in e009.hint
    e005 = finding(engine, "pa_dbhealth.E005", workers=2)
    assert e005.message.startswith("pool_recycle = -1 keeps connections forever")
    assert "after 300 s" in e005.message and fix in e005.hint
    e007 = finding(engine, "pa_dbhealth.E007", workers=2)
    assert "the site can open 30 at once (2 worker(s) from the workers argument" in e007.message


def test_engine_options_fit_and_pass_the_audit(make_engine: Callable[..., Any]) -> None:
    url = sqlalchemy_url(sandbox_info())
    fitting = engine_options(url, workers=2)
    assert fitting == {"pool_size": 1, "max_overflow": 0, "pool_recycle": 280}
    engine = install(make_engine(**fitting))
    assert [f.id for f in audit(engine, workers=2)] == ["pa_dbhealth.I012"]


def sandbox_info() -> sandbox.SandboxInfo:
    import conftest

    assert conftest._info is not None
    return conftest._info


@pytest.mark.parametrize(
    ("workers", "fitting"),
    [
        (1, {"pool_size": 1, "max_overflow": 0, "pool_recycle": 280}),  # one thread: one
        (2, {"pool_size": 1, "max_overflow": 0, "pool_recycle": 280}),  # one left free
        (3, {"pool_size": 1, "max_overflow": 0, "pool_recycle": 280}),  # exactly the cap
        (4, {"poolclass": NullPool, "pool_reset_on_return": None}),  # not one each
    ],
)
def test_engine_options_by_workers(workers: int, fitting: dict[str, Any]) -> None:
    assert engine_options(sqlalchemy_url(sandbox_info()), workers=workers) == fitting


def test_engine_options_follow_the_live_timeout(wait_timeout: Callable[[int], None]) -> None:
    wait_timeout(120)
    options = engine_options(sqlalchemy_url(sandbox_info()), workers=2)
    assert options["pool_recycle"] == 100  # 120 s minus TIMEOUT_MARGIN


def test_engine_options_without_the_server_use_the_fallbacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = "mysql+mysqldb://app:secret-word@127.0.0.1:9/app"
    options = engine_options(url, workers=2, options={"SERVER_IDLE_TIMEOUT": 100})
    assert options == {"pool_size": 1, "max_overflow": 0, "pool_recycle": 80}
    assert "could not ask the server" in caplog.text
    assert "secret-word" not in caplog.text


@pytest.mark.parametrize(
    ("kwargs", "present", "absent"),
    [
        ({"pool_recycle": 600}, ["pa_dbhealth.E004"], ["pa_dbhealth.E005"]),
        ({"pool_recycle": -1}, ["pa_dbhealth.E005"], ["pa_dbhealth.E004"]),
        ({"pool_recycle": 280}, [], ["pa_dbhealth.E004", "pa_dbhealth.E005"]),
        ({"pool_pre_ping": True}, [], ["pa_dbhealth.W006"]),
        ({}, ["pa_dbhealth.W006"], []),
        ({"pool_size": 2, "max_overflow": 1}, [], ["pa_dbhealth.E009"]),
        ({"pool_size": 3, "max_overflow": 1}, ["pa_dbhealth.E009"], []),
        ({"pool_size": 0}, ["pa_dbhealth.E009"], []),  # QueuePool without a limit
        ({"max_overflow": -1}, ["pa_dbhealth.E009"], []),
    ],
)
def test_queue_pool_findings(
    make_engine: Callable[..., Any], kwargs: dict[str, Any], present: list[str], absent: list[str]
) -> None:
    found = ids(make_engine(**kwargs), workers=1)
    assert set(present) <= set(found), found
    assert not set(absent) & set(found), found


def test_recycle_message_has_the_real_figures(
    make_engine: Callable[..., Any], wait_timeout: Callable[[int], None]
) -> None:
    wait_timeout(120)
    e004 = finding(make_engine(pool_recycle=600), "pa_dbhealth.E004", workers=1)
    assert e004.message.startswith("pool_recycle = 600 but the server closes connections idle")
    assert "idle for 120 s" in e004.message
    assert "Set pool_recycle to 100 or less" in e004.hint


def test_unbounded_pool_message(make_engine: Callable[..., Any]) -> None:
    e009 = finding(make_engine(pool_size=0), "pa_dbhealth.E009", workers=1)
    assert "no limit on connections per process" in e009.message


def test_installed_engine_needs_no_pre_ping(make_engine: Callable[..., Any]) -> None:
    assert "pa_dbhealth.W006" not in ids(install(make_engine()), workers=1)


@pytest.mark.parametrize(
    ("workers", "expected"),
    [(4, "pa_dbhealth.E007"), (3, "pa_dbhealth.W008"), (2, None)],
)
def test_budget_counts_each_process_pool(
    make_engine: Callable[..., Any], workers: int, expected: str | None
) -> None:
    engine = make_engine(pool_size=1, max_overflow=0, pool_recycle=280)
    budget = [
        i for i in ids(engine, workers=workers) if i in ("pa_dbhealth.E007", "pa_dbhealth.W008")
    ]
    assert budget == ([expected] if expected else [])


def test_the_answers_pool_is_per_process(make_engine: Callable[..., Any]) -> None:
    # pool_size=2, max_overflow=1 "never uses more than 3": per process. Two processes: 6.
    engine = make_engine(pool_size=2, max_overflow=1, pool_recycle=280)
    assert "pa_dbhealth.E009" not in ids(engine, workers=1)
    e007 = finding(engine, "pa_dbhealth.E007", workers=2)
    assert "can open 6 at once" in e007.message
    assert "pool_size 2 + max_overflow 1" in e007.message


def test_task_connections_count(make_engine: Callable[..., Any]) -> None:
    engine = make_engine(pool_size=1, max_overflow=0, pool_recycle=280)
    found = ids(engine, workers=2, options={"TASK_CONNECTIONS": 1})
    assert "pa_dbhealth.W008" in found


def test_workers_unknown_is_said(make_engine: Callable[..., Any]) -> None:
    assert "pa_dbhealth.I019" in ids(make_engine())


def test_null_pool_is_judged_for_what_it_is(make_engine: Callable[..., Any]) -> None:
    engine = make_engine(poolclass=NullPool, pool_recycle=7200)
    found = ids(engine, workers=2)
    # It keeps nothing: no recycle, no pre-ping, no per-process limit to exceed...
    assert not {"pa_dbhealth.E004", "pa_dbhealth.E005", "pa_dbhealth.W006", "pa_dbhealth.E009"} & (
        set(found)
    )
    # ... and each worker holds one connection while it uses it.
    assert "pa_dbhealth.E007" not in found
    e007 = finding(engine, "pa_dbhealth.E007", workers=4)
    assert "NullPool, one per thread" in e007.message
    assert "poolclass=NullPool" in e007.hint and "install(engine)" in e007.hint


def test_an_installed_null_pool_over_the_cap_queues_rather_than_fails(
    make_engine: Callable[..., Any],
) -> None:
    """What engine_options() writes with install(): the excess waits in the line (W022)."""
    engine = install(make_engine(poolclass=NullPool), {"CONNECT_RETRY": 5.0})
    found = ids(engine, workers=8)
    assert "pa_dbhealth.E007" not in found
    w022 = finding(engine, "pa_dbhealth.W022", workers=8)
    assert "can open 8 connections at once" in w022.message
    assert "about 1.7 times as long as a request holds one" in w022.message
    assert "run at most 3 concurrent web worker(s)" in w022.hint
    # Without waiting (CONNECT_RETRY 0) the excess fails: E007 as before.
    still = install(make_engine(poolclass=NullPool), {"CONNECT_RETRY": 0})
    assert "pa_dbhealth.E007" in ids(still, workers=8, options={"CONNECT_RETRY": 0})


@pytest.mark.parametrize("poolclass", [StaticPool, AssertionPool])
def test_single_connection_pools(make_engine: Callable[..., Any], poolclass: Any) -> None:
    engine = make_engine(poolclass=poolclass)
    found = ids(engine, workers=2)
    assert "pa_dbhealth.E009" not in found
    assert {"pa_dbhealth.E005", "pa_dbhealth.W006"} <= set(found)  # it keeps its one forever
    assert "pa_dbhealth.E007" not in found  # 2 processes x 1


def test_singleton_thread_pool_keeps_one_per_thread(make_engine: Callable[..., Any]) -> None:
    engine = make_engine(poolclass=SingletonThreadPool, pool_recycle=280)
    found = ids(engine, workers=4)
    assert "pa_dbhealth.E007" in found
    assert "pa_dbhealth.W006" in found


def test_unreachable_server_is_one_finding(make_engine: Callable[..., Any]) -> None:
    engine = make_engine("mysql+mysqldb://app:secret-word@127.0.0.1:9/app")
    result = report(engine)
    assert [f.id for f in result.findings] == ["pa_dbhealth.E011"]
    assert "127.0.0.1:9" in result.findings[0].message
    assert "secret-word" not in str(result.as_dict())


def test_full_cap_is_e018_at_once(make_engine: Callable[..., Any], raw_connections: Any) -> None:
    engine = install(make_engine(), {"CONNECT_RETRY": 30.0})
    raw_connections(3)
    (found,) = audit(engine)
    assert found.id == "pa_dbhealth.E018"
    assert "(1226)" in found.message


def test_offline_judges_by_the_options(make_engine: Callable[..., Any]) -> None:
    engine = make_engine("mysql+mysqldb://app:x@127.0.0.1:9/app", pool_recycle=600)
    result = report(engine, offline=True, options={"SERVER_IDLE_TIMEOUT": 300}, workers=1)
    found = [f.id for f in result.findings]
    assert "pa_dbhealth.I015" in found and "pa_dbhealth.E004" in found
    assert result.source == "settings"


def test_idle_connection_past_the_timeout_is_w014(
    make_engine: Callable[..., Any], raw_connections: Any, wait_timeout: Callable[[int], None]
) -> None:
    (console,) = raw_connections(1)
    console.cursor().execute("SET SESSION wait_timeout = 3600")
    wait_timeout(2)  # the server's timeout for new connections; the console has its own
    import time

    time.sleep(3.2)
    w014 = finding(make_engine(), "pa_dbhealth.W014", workers=1)
    assert f"Connection {console.thread_id()}" in w014.message
    assert "python -m pa_dbhealth connections --kill-idle 2" in w014.hint


def test_flask_wording(make_engine: Callable[..., Any]) -> None:
    engine = make_engine(pool_recycle=7200)
    found = audit(engine, workers=2, wording=flask_wording(None, " (Flask-SQLAlchemy's default)"))
    (e004,) = [f for f in found if f.id == "pa_dbhealth.E004"]
    assert e004.message.startswith(
        "SQLALCHEMY_ENGINE_OPTIONS['pool_recycle'] = 7200 (Flask-SQLAlchemy's default) but"
    )
    assert (
        "SQLALCHEMY_ENGINE_OPTIONS = {'pool_size': 1, 'max_overflow': 0, 'pool_recycle': 280}"
        in e004.hint
    )
    bind = audit(engine, workers=2, wording=flask_wording("reports"))
    (e004,) = [f for f in bind if f.id == "pa_dbhealth.E004"]
    assert e004.message.startswith("SQLALCHEMY_BINDS['reports']['pool_recycle'] = 7200 but")


def test_postgresql_engine(pg_server: Any, pg_admin: Any, make_engine: Callable[..., Any]) -> None:
    engine = make_engine(sqlalchemy_url(pg_server, "psycopg"))
    found = ids(engine, workers=2)
    assert {"pa_dbhealth.E009", "pa_dbhealth.E007", "pa_dbhealth.W006"} <= set(found)
    e009 = finding(engine, "pa_dbhealth.E009", workers=2)
    assert (
        "'too many connections for role'" in finding(engine, "pa_dbhealth.E007", workers=2).message
    )
    assert "pool_size=1, max_overflow=0" in e009.hint
    fitting = engine_options(sqlalchemy_url(pg_server, "psycopg"), workers=2)
    assert fitting["pool_size"] == 1


@pytest.mark.parametrize(
    ("processes", "threads", "fitting"),
    [
        (1, 8, {"pool_size": 1, "max_overflow": 1, "pool_recycle": 280}),  # one left free
        (3, 2, {"pool_size": 1, "max_overflow": 0, "pool_recycle": 280}),  # exactly the cap
        (4, 2, {"poolclass": NullPool, "pool_reset_on_return": None}),  # the benchmark's
        (None, 1, {"pool_size": 1, "max_overflow": 0, "pool_recycle": 280}),  # unknown
    ],
)
def test_fitting_under_uwsgi(processes: int | None, threads: int, fitting: dict[str, Any]) -> None:
    from pa_dbhealth.sqlalchemy.sizing import Concurrency, fitting_options

    how = Concurrency(processes, threads, "uWSGI")
    assert fitting_options(3, 0, how, 280.0) == fitting
