"""The audit of what pins a connection, on a real app: Django's execute wrapper and
SQLAlchemy's listener count each seeded pin at its line, once per site, and ``dbcheck``
(run in another process), ``flask dbcheck`` and the health view's detail report them."""

from __future__ import annotations

import json
from typing import Any

import pinned_app
import pytest
from conftest import sqlalchemy_url
from django.test import override_settings
from processes import Processes

from pa_dbhealth.core import pin_log

mysql = pytest.mark.django_db(transaction=True)


@mysql
def test_django_pins_are_counted_at_their_lines_and_dbcheck_names_them(
    processes: Processes,
) -> None:
    for _ in range(3):
        pinned_app.lock_reports()
    pinned_app.bulk_import()
    pinned_app.ordinary()
    here = {(s.site.split(" in ")[0], s.what, s.count) for s in pin_log.sites()}
    assert here == {
        (pinned_app.line_of("GET_LOCK"), "GET_LOCK", 3),
        (pinned_app.line_of("SET foreign_key_checks"), "SET foreign_key_checks", 1),
        (pinned_app.line_of("SQL_CALC_FOUND_ROWS"), "SQL_CALC_FOUND_ROWS", 1),
        (pinned_app.line_of("SET foreign_key_checks back"), "SET foreign_key_checks", 1),
    }
    # dbcheck in another process reads what this one saw.
    out, err, code = processes.manage("dbcheck", "--database", "default", "--format", "json")
    assert code == 0, err  # W035 is a warning: dbcheck fails at errors by default

    findings = json.loads(out)["databases"]["default"]["findings"]
    pins = pinned_app.w035_sites(findings)
    assert set(pins) == {
        pinned_app.line_of("GET_LOCK"),
        pinned_app.line_of("SET foreign_key_checks"),
        pinned_app.line_of("SQL_CALC_FOUND_ROWS"),
        pinned_app.line_of("SET foreign_key_checks back"),
    }
    lock = pins[pinned_app.line_of("GET_LOCK")]
    assert "would pin ProxySQL, MySQL Router and MaxScale connections" in lock
    assert "(GET_LOCK, 3 time(s) since its processes started)" in lock
    assert "Use a transaction-scoped lock instead" in lock
    assert "ProxySQL connections" in pins[pinned_app.line_of("SET foreign_key_checks")]
    # Only the rules of the multiplexers PIN_RULES names; none at all when it is empty.
    settings = {"PA_DBHEALTH": {"PIN_RULES": ["maxscale"]}}
    out, _, _ = processes.manage("dbcheck", "--format", "json", settings=settings)
    only = pinned_app.w035_sites(json.loads(out)["databases"]["default"]["findings"])
    assert set(only) == {pinned_app.line_of("GET_LOCK")}
    assert "would pin MaxScale connections" in only[pinned_app.line_of("GET_LOCK")]
    settings = {"PA_DBHEALTH": {"PIN_RULES": []}}
    out, _, _ = processes.manage("dbcheck", "--format", "json", settings=settings)
    assert pinned_app.w035_sites(json.loads(out)["databases"]["default"]["findings"]) == {}


@mysql
def test_sqlalchemy_pins_of_another_process_are_in_flask_dbcheck(
    processes: Processes, server: Any
) -> None:
    from flask import Flask
    from flask_sqlalchemy import SQLAlchemy

    from pa_dbhealth.flask import DbHealth

    code = (
        "import pinned_app\n"
        "from sqlalchemy import create_engine\n"
        "from pa_dbhealth.sqlalchemy import install\n"
        f"engine = install(create_engine({sqlalchemy_url(server)!r}))\n"
        "for _ in range(2):\n"
        "    pinned_app.rank_rows(engine)\n"
        "engine.dispose()\n"
    )
    finished = processes.python(code)
    assert finished.returncode == 0, finished.stderr
    assert pin_log.sites() == []  # another process's
    app = Flask("pinned")
    app.config["SQLALCHEMY_DATABASE_URI"] = sqlalchemy_url(server)
    db = SQLAlchemy()
    db.init_app(app)
    DbHealth(app, db=db)
    try:
        result = app.test_cli_runner().invoke(args=["dbcheck", "--format", "json"])
    finally:
        with app.app_context():
            for engine in db.engines.values():
                engine.dispose()
    pins = pinned_app.w035_sites(json.loads(result.stdout)["databases"]["default"]["findings"])
    assert set(pins) == {pinned_app.line_of("SET @"), pinned_app.line_of("CREATE TEMPORARY")}
    assert "(SET @, 2 time(s)" in pins[pinned_app.line_of("SET @")]
    assert "ProxySQL and MySQL Router" in pins[pinned_app.line_of("SET @")]


@mysql
def test_the_health_views_detail_lists_the_pins(client: Any) -> None:
    pinned_app.lock_reports()
    token = "a-health-token-for-the-pins"
    with override_settings(PA_DBHEALTH={"HEALTH_TOKEN": token}):
        anonymous = client.get("/health/default/").json()
        body = client.get("/health/default/", headers={"Authorization": f"Bearer {token}"}).json()
    assert set(anonymous) == {"status"}
    (pin,) = body["pins"]
    assert pin["id"] == "pa_dbhealth.W035"
    assert pinned_app.line_of("GET_LOCK") in pin["message"]


@mysql
def test_the_flask_health_views_detail_lists_the_pins(server: Any) -> None:
    from flask import Flask
    from flask_sqlalchemy import SQLAlchemy

    from pa_dbhealth.flask import DbHealth

    token = "a-health-token-for-the-pins"
    app = Flask("pinned")
    app.config["SQLALCHEMY_DATABASE_URI"] = sqlalchemy_url(server)
    app.config["PA_DBHEALTH"] = {"HEALTH_TOKEN": token}
    db = SQLAlchemy()
    db.init_app(app)
    DbHealth(app, db=db)
    try:
        with app.app_context():
            pinned_app.rank_rows(db.engine)
        client = app.test_client()
        anonymous = client.get("/dbhealth/").get_json()
        body = client.get("/dbhealth/", headers={"Authorization": f"Bearer {token}"}).get_json()
    finally:
        with app.app_context():
            for engine in db.engines.values():
                engine.dispose()
    assert set(anonymous) == {"status"}
    assert set(pinned_app.w035_sites(body["pins"])) == {
        pinned_app.line_of("SET @"),
        pinned_app.line_of("CREATE TEMPORARY"),
    }


def test_a_pin_in_pa_dbhealths_own_code_is_not_counted() -> None:
    pin_log.note("SELECT GET_LOCK('x', 1)", "mysql", lambda: (None, None))
    assert pin_log.sites() == []
