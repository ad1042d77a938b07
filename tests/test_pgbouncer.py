"""Live behind PgBouncer (Debian's binary, transaction mode, a pool of 3) in front of the
suite's PostgreSQL: Django and SQLAlchemy under uWSGI with 8 clients, what ``dbcheck``
says there, and the audit of what pins."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pgbouncer
import pinned_app
import pytest
from conftest import AddAlias, run_command
from django.conf import settings
from django.db import connections
from processes import Processes

CLIENTS = 8
REQUESTS = 25  # per client


@pytest.fixture
def bouncer(pg_server: Any) -> Iterator[pgbouncer.PgBouncer]:
    """A PgBouncer of this test's own: stopping it closes its server connections, so the
    next test starts with none of the role's."""
    try:
        started = pgbouncer.start(pg_server)
    except pgbouncer.PgBouncerMissing as exc:
        pytest.skip(str(exc))
    yield started
    pgbouncer.stop(started)


@pytest.fixture
def pgb(
    bouncer: pgbouncer.PgBouncer, django_db_blocker: Any, temporary_alias: AddAlias
) -> Callable[..., str]:
    """``pgb(alias="pgb", **settings)``: an alias of Django's connection through PgBouncer."""

    def add(alias: str = "pgb", **extra: Any) -> str:
        return temporary_alias(alias, bouncer.database_settings(**extra))

    with django_db_blocker.unblock():
        yield add


def hammer(get: Callable[[str], tuple[int, str]], path: str) -> list[str]:
    """``CLIENTS`` clients at once, ``REQUESTS`` GETs each: what did not answer 200."""

    def client(_: int) -> list[str]:
        failed = []
        for _ in range(REQUESTS):
            status, body = get(path)
            if status != 200:
                failed.append(f"{status}: {body[:300]}")
        return failed

    with ThreadPoolExecutor(CLIENTS) as pool:
        return [f for found in pool.map(client, range(CLIENTS)) for f in found]


def test_django_under_uwsgi_with_8_clients_through_a_pool_of_3(
    bouncer: pgbouncer.PgBouncer, processes: Processes, pg_admin: Any
) -> None:
    databases = {
        "default": settings.DATABASES["default"],
        "pgb": bouncer.database_settings(DISABLE_SERVER_SIDE_CURSORS=True),
    }
    site = processes.uwsgi(processes=2, threads=4, settings={"DATABASES": databases})
    assert hammer(site.get, "/rows/pgb/") == []
    servers = pg_admin.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app'"
    ).fetchone()[0]
    assert servers <= pgbouncer.POOL_SIZE


def test_sqlalchemy_under_uwsgi_with_8_clients_through_a_pool_of_3(
    bouncer: pgbouncer.PgBouncer, processes: Processes
) -> None:
    site = processes.uwsgi(
        processes=2,
        threads=4,
        env={"PGBOUNCER_URL": bouncer.url()},
        module="pgbouncer_flask_app:app",
    )
    assert hammer(site.get, "/rows/") == []


def test_dbcheck_names_pgbouncer_and_its_pool_and_wants_server_side_cursors_off(
    pgb: Callable[..., str],
) -> None:
    alias = pgb()
    out, _, _ = run_command("dbcheck", "--database", alias, "--format", "json")
    report = json.loads(out)["databases"][alias]
    found = {f["id"]: f for f in report["findings"]}
    behind = found["pa_dbhealth.I036"]["message"]
    assert "connects through PgBouncer 1." in behind
    assert f"the app connects to port {connections[alias].settings_dict['PORT']}" in behind
    assert "default_pool_size = 3 server connection(s)" in behind
    assert "pool_mode = transaction" in behind
    assert report["server"]["pooler"]["pgbouncer"]["default_pool_size"] == 3
    cursors = found["pa_dbhealth.W037"]
    assert cursors["hint"] == "Set DATABASES['pgb']['DISABLE_SERVER_SIDE_CURSORS'] = True."
    # The workers' connections are PgBouncer's clients: no budget against the role's cap.
    assert not {"pa_dbhealth.E007", "pa_dbhealth.W008"} & set(found)
    assert "pa_dbhealth.E034" not in found  # Django turns psycopg's prepared statements off

    alias = pgb("pgb_fitted", DISABLE_SERVER_SIDE_CURSORS=True, CONN_MAX_AGE=60)
    out, _, _ = run_command("dbcheck", "--database", alias, "--format", "json")
    found = {f["id"]: f for f in json.loads(out)["databases"][alias]["findings"]}
    assert "pa_dbhealth.I036" in found and "pa_dbhealth.W037" not in found
    # Kept connections: the middleware's socket check sees only the link to PgBouncer.
    kept = found["pa_dbhealth.W006"]["hint"]
    assert kept.startswith("Set DATABASES['pgb_fitted']['CONN_HEALTH_CHECKS'] = True: behind")
    assert "ConnectionHygieneMiddleware" not in kept


def test_the_direct_connection_is_not_taken_for_a_pooler(pg: str) -> None:
    out, _, _ = run_command("dbcheck", "--database", pg, "--format", "json")
    ids = [f["id"] for f in json.loads(out)["databases"][pg]["findings"]]
    assert "pa_dbhealth.I036" not in ids


def test_sqlalchemy_prepared_statements_behind_pgbouncer_1_18_are_an_error(
    bouncer: pgbouncer.PgBouncer, make_engine: Callable[..., Any]
) -> None:
    from pa_dbhealth.sqlalchemy import report

    found = {f.id: f for f in report(make_engine(bouncer.url())).findings}
    assert "PgBouncer 1." in found["pa_dbhealth.I036"].message
    assert "prepare_threshold': None" in found["pa_dbhealth.E034"].hint
    fitted = make_engine(bouncer.url(), connect_args={"prepare_threshold": None})
    ids = [f.id for f in report(fitted).findings]
    assert "pa_dbhealth.I036" in ids and "pa_dbhealth.E034" not in ids


def test_the_pins_audit_catches_what_transaction_mode_does_not_support(
    pgb: Callable[..., str],
) -> None:
    alias = pgb(DISABLE_SERVER_SIDE_CURSORS=True)
    pinned_app.pg_session_state(alias)
    out, _, _ = run_command("dbcheck", "--database", alias, "--format", "json")
    pins = pinned_app.w035_sites(json.loads(out)["databases"][alias]["findings"])
    expected = ("pg_advisory_lock", "SET statement_timeout", "LISTEN", "WITH HOLD")
    assert set(pins) == {pinned_app.line_of(marker) for marker in expected}
    for message in pins.values():
        assert "would pin PgBouncer (transaction mode) connections" in message
    lock = pins[pinned_app.line_of("pg_advisory_lock")]
    assert "Use pg_advisory_xact_lock()" in lock
