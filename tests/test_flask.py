"""pa_dbhealth.flask against the real capped server: DbHealth's wiring, ``flask dbcheck`` and
``flask dbconnections`` (output and exit codes), the health view's access rules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
from conftest import connections_accepted, sqlalchemy_url, wait_until_settled
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import create_engine, text

from pa_dbhealth.flask import DbHealth
from pa_dbhealth.sqlalchemy import events
from pa_dbhealth.sqlalchemy import tracker as sqlalchemy_tracker

pytestmark = pytest.mark.matrix_once  # the same on every Django version

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "a-health-token-for-the-tests"
SEED = {}  # the question's engine: Flask-SQLAlchemy's defaults
FITTED = {"pool_size": 1, "max_overflow": 0, "pool_recycle": 280}


@pytest.fixture
def make_app(server: Any, admin: Any) -> Iterator[Callable[..., Flask]]:
    """``make_app(engine_options, pa_dbhealth=..., binds=...)``: a Flask app with
    Flask-SQLAlchemy and DbHealth on the suite's server; its engines disposed after."""
    apps: list[tuple[Flask, SQLAlchemy]] = []
    events.LEARNED.forget()
    wait_until_settled(admin)

    def make(
        engine_options: dict[str, Any] | None = None,
        pa_dbhealth: Any = None,
        binds: dict[str, Any] | None = None,
    ) -> Flask:
        app = Flask("pa_dbhealth_test_app")
        app.config["SQLALCHEMY_DATABASE_URI"] = sqlalchemy_url(server)
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = dict(engine_options or {})
        if binds:
            app.config["SQLALCHEMY_BINDS"] = binds
        if pa_dbhealth is not None:
            app.config["PA_DBHEALTH"] = pa_dbhealth
        db = SQLAlchemy()
        db.init_app(app)
        DbHealth(app, db=db)
        apps.append((app, db))
        return app

    yield make
    for app, db in apps:
        with app.app_context():
            for engine in db.engines.values():
                engine.dispose()
    wait_until_settled(admin)


def invoke(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=list(args))


# --- wiring -------------------------------------------------------------------------------


def test_every_engine_and_bind_is_installed(make_app: Callable[..., Flask], server: Any) -> None:
    app = make_app(FITTED, binds={"reports": sqlalchemy_url(server, "pymysql")})
    engines = app.extensions["pa_dbhealth"].engines(app)
    assert set(engines) == {"default", "reports"}
    assert all(events.installed(engine) is not None for engine in engines.values())


def test_a_plain_engine(server: Any, admin: Any) -> None:
    engine = create_engine(sqlalchemy_url(server), **FITTED)
    app = Flask("plain_engine_app")
    DbHealth(app, engine=engine)
    try:
        assert events.installed(engine) is not None
        result = invoke(app, "dbcheck", "--format", "json")
        assert set(json.loads(result.stdout)["databases"]) == {"default"}
    finally:
        engine.dispose()
        wait_until_settled(admin)


def test_db_must_be_set_up_first() -> None:
    app = Flask("not_set_up")
    with pytest.raises(RuntimeError, match=r"db\.init_app"):
        DbHealth(app, db=SQLAlchemy())
    with pytest.raises(TypeError):
        DbHealth(app)


# --- flask dbcheck ------------------------------------------------------------------------


def test_dbcheck_on_the_questions_engine_exits_1_with_the_fix(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(SEED, {"WORKERS": 2})
    result = invoke(app, "dbcheck")
    assert result.exit_code == 1
    out = result.stdout
    assert "ERROR   pa_dbhealth.E009: The engine 'default' uses QueuePool with up to 15" in out
    assert (
        "SQLALCHEMY_ENGINE_OPTIONS['pool_recycle'] = 7200 (Flask-SQLAlchemy's default for MySQL)"
        in out
    )
    fix = "SQLALCHEMY_ENGINE_OPTIONS = {'pool_size': 1, 'max_overflow': 0, 'pool_recycle': 280}"
    assert fix in out
    assert "flask dbcheck: 3 errors, 1 info (3 at or above error)." in out
    assert "Error: 3 finding(s) at or above error." in result.stderr


def test_dbcheck_on_the_fitted_engine_exits_0(make_app: Callable[..., Flask]) -> None:
    app = make_app(FITTED, {"WORKERS": 2})
    result = invoke(app, "dbcheck")
    assert result.exit_code == 0, result.output
    assert "flask dbcheck: 1 info (none at or above error)." in result.stdout
    assert invoke(app, "dbcheck", "--fail-level", "info").exit_code == 1


def test_dbcheck_json_is_dbchecks(make_app: Callable[..., Flask]) -> None:
    app = make_app(SEED, {"WORKERS": 2})
    result = invoke(app, "dbcheck", "--format", "json", "--fail-level", "warning")
    assert result.exit_code == 1
    body = json.loads(result.stdout)
    default = body["databases"]["default"]
    assert default["source"] == "server"
    assert default["server"]["account_limit"] == 3
    assert set(default["findings"][0]) == {"id", "level", "message", "hint"}


def test_a_bad_setting_is_reported_and_never_breaks_a_request(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(FITTED, {"WORKERS": "two", "HEALTH_TOKEN": TOKEN, "CONECT_RETRY": 1})
    result = invoke(app, "dbcheck", "--format", "json")
    assert result.exit_code == 1
    found = {f["id"]: f for f in json.loads(result.stdout)["databases"]["default"]["findings"]}
    assert (
        "app.config['PA_DBHEALTH']['WORKERS'] = 'two' must be None or a whole number"
        in (found["pa_dbhealth.E003"]["message"])
    )
    assert found["pa_dbhealth.E002"]["hint"] == "Did you mean 'CONNECT_RETRY'?"
    response = app.test_client().get("/dbhealth/", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == HTTPStatus.OK  # the valid keys still apply
    assert "databases" in response.get_json()


def test_a_refused_registry_is_e028_in_dbcheck_dbconnections_and_the_full_body(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(FITTED, {"HEALTH_TOKEN": TOKEN, "REGISTRY_DIR": "/tmp"})
    checked = invoke(app, "dbcheck")
    listed = invoke(app, "dbconnections")
    (finding,) = get(app, TOKEN).get_json()["findings"]
    for out in (checked.stdout, listed.stdout, finding["message"]):
        assert "The registry of holders is off: /tmp is open to other users" in out
    assert checked.exit_code == 1 and listed.exit_code == 0, listed.stdout + listed.stderr
    fix = "Remove app.config['PA_DBHEALTH']['REGISTRY_DIR'] to use the default"
    assert fix in checked.stdout
    assert "chmod" not in checked.stdout + listed.stdout + finding["hint"]


def test_dbcheck_misuse_exits_2(make_app: Callable[..., Flask]) -> None:
    app = make_app(FITTED)
    assert invoke(app, "dbcheck", "--bind", "nope").exit_code == 2
    assert invoke(app, "dbcheck", "--format", "xml").exit_code == 2


def test_dbcheck_offline(make_app: Callable[..., Flask]) -> None:
    app = make_app(FITTED, {"WORKERS": 2})
    result = invoke(app, "dbcheck", "--offline", "--format", "json")
    found = [f["id"] for f in json.loads(result.stdout)["databases"]["default"]["findings"]]
    assert "pa_dbhealth.I015" in found


def test_a_real_flask_command_on_the_demo(server: Any, admin: Any) -> None:
    env = {
        **os.environ,
        **server.env(),
        "FLASK_APP": "flask_demo.app",
        "DEMO_WORKERS": "2",
        "PYTHONPATH": str(ROOT),
    }
    flask = [sys.executable, "-m", "flask"]
    seed = subprocess.run(
        [*flask, "dbcheck"],
        env={**env, "FLASK_DEMO_ENGINE": "seed"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert seed.returncode == 1, seed.stderr
    assert "{'pool_size': 1, 'max_overflow': 0, 'pool_recycle': 280}" in seed.stdout
    fitted = subprocess.run(
        [*flask, "dbcheck"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert fitted.returncode == 0, fitted.stdout + fitted.stderr
    assert server.password not in seed.stdout + seed.stderr + fitted.stdout + fitted.stderr
    wait_until_settled(admin)


# --- flask dbconnections ------------------------------------------------------------------


def test_dbconnections_lists_the_account(
    make_app: Callable[..., Flask], raw_connections: Any
) -> None:
    app = make_app(FITTED)
    (console,) = raw_connections(1)
    result = invoke(app, "dbconnections")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "default (mysql): 2 of 3 connections, 1 free"
    assert any(line.split()[0] == str(console.thread_id()) for line in lines[2:])
    assert "<- this one" in result.stdout
    body = json.loads(invoke(app, "dbconnections", "--format", "json").stdout)
    assert body["databases"]["default"]["total"] == 2


def test_dbconnections_kills_idle_ones(
    make_app: Callable[..., Flask], raw_connections: Any, settled_ids: Any
) -> None:
    app = make_app(FITTED)
    (console,) = raw_connections(1)
    console.autocommit(True)
    time.sleep(1.1)
    dry = json.loads(
        invoke(app, "dbconnections", "--kill-idle", "1", "--dry-run", "--format", "json").stdout
    )
    assert dry["databases"]["default"]["would_kill"] == []  # the real run's rules
    flags = ("--kill-idle", "1", "--include-transactions", "--dry-run", "--format", "json")
    dry = json.loads(invoke(app, "dbconnections", *flags).stdout)
    assert dry["databases"]["default"]["would_kill"] == [console.thread_id()]
    spared = json.loads(invoke(app, "dbconnections", "--kill-idle", "1", "--format", "json").stdout)
    # The account cannot see transactions (no PROCESS privilege, as on PythonAnywhere).
    assert spared["databases"]["default"]["spared"] == {
        str(console.thread_id()): "transaction unknown"
    }
    result = invoke(
        app, "dbconnections", "--kill-idle", "1", "--include-transactions", "--format", "json"
    )
    assert result.exit_code == 0
    assert json.loads(result.stdout)["databases"]["default"]["killed"] == [console.thread_id()]
    assert console.thread_id() not in settled_ids(lambda ids: console.thread_id() not in ids)


def test_dbconnections_misuse_exits_2(make_app: Callable[..., Flask]) -> None:
    app = make_app(FITTED)
    result = invoke(app, "dbconnections", "--dry-run")
    assert result.exit_code == 2
    assert "--dry-run goes with --kill-idle SECONDS" in result.stderr
    assert invoke(app, "dbconnections", "--kill-idle", "nan").exit_code == 2
    assert invoke(app, "dbconnections", "--watch", "0").exit_code == 2


def test_dbconnections_at_a_full_cap_answers_at_once_from_the_registry(
    make_app: Callable[..., Flask], raw_connections: Any
) -> None:
    app = make_app(FITTED, {"CONNECT_RETRY": 5.0})
    raw_connections(3)
    started = time.monotonic()
    result = invoke(app, "dbconnections")
    assert time.monotonic() - started < 2
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(
        "default: 3 of 3 in use (the server refused this look: 1226): 0 named below, 3 not tracked"
    )
    assert "gave up" not in result.stdout + result.stderr
    assert "reload the web app" in result.stdout


# --- the health view ----------------------------------------------------------------------


def get(
    app: Flask, bearer: str | None = None, headers: dict[str, str] | None = None, **kwargs: Any
) -> Any:
    sent = dict(headers or {})
    if bearer:
        sent["Authorization"] = f"Bearer {bearer}"
    return app.test_client().get("/dbhealth/", headers=sent, **kwargs)


def test_wrong_tokens_share_the_anonymous_status_then_wait(
    make_app: Callable[..., Flask], tmp_path: Path, admin: Any
) -> None:
    from pa_dbhealth.core.sign_in_limit import LIMIT

    app = make_app(FITTED, {"HEALTH_TOKEN": TOKEN, "REGISTRY_DIR": str(tmp_path / "reg")})
    assert get(app).get_json() == {"status": "ok"}
    before = connections_accepted(admin)
    for _ in range(LIMIT):
        assert get(app, "wrong-token-of-the-right-length").get_json() == {"status": "ok"}
    assert connections_accepted(admin) <= before + 1  # the shared look, once a second at most
    response = get(app, TOKEN)
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert 0 < int(response.headers["Retry-After"]) <= 60


def test_the_full_body_needs_the_token(make_app: Callable[..., Flask]) -> None:
    app = make_app(FITTED, {"HEALTH_TOKEN": TOKEN})
    for bearer in (None, "wrong-token-of-the-right-length", TOKEN[:-1]):
        response = get(app, bearer)
        assert response.status_code == HTTPStatus.OK
        assert response.get_json() == {"status": "ok"}
    body = get(app, TOKEN).get_json()
    db = body["databases"]["default"]
    assert db["connections"]["total"] == 1  # the check's own
    assert db["connections"]["limit"] == 3 and db["wait_timeout"] == 300
    assert set(db["process"]) == {
        "opened",
        "closed",
        "open",
        "leaks",
        "connect_retries",
        "connect_giveups",
        "connect_handoffs",
        "probes_refused",  # as the Django face counts them
    }


def test_no_token_configured_means_no_token_works(make_app: Callable[..., Flask]) -> None:
    app = make_app(FITTED)
    assert get(app, "None").get_json() == {"status": "ok"}


def test_headers_and_methods(make_app: Callable[..., Flask]) -> None:
    app = make_app(FITTED, {"HEALTH_TOKEN": TOKEN})
    for bearer in (None, TOKEN):
        for query in ({}, {"format": "prometheus"}):
            response = get(app, bearer, query_string=query)
            assert "no-store" in response.headers["Cache-Control"]
            assert {"Authorization", "Accept"} <= set(response.vary)
    client = app.test_client()
    assert client.post("/dbhealth/").status_code == HTTPStatus.METHOD_NOT_ALLOWED
    assert client.head("/dbhealth/").status_code == HTTPStatus.OK
    assert get(app, query_string={"format": "xml"}).status_code == HTTPStatus.BAD_REQUEST


def test_prometheus(make_app: Callable[..., Flask]) -> None:
    app = make_app(FITTED, {"HEALTH_TOKEN": TOKEN})
    anonymous = get(app, headers={"Accept": "text/plain"}).get_data(as_text=True)
    assert anonymous.splitlines()[-1] == 'pa_dbhealth_up{database="default"} 1'
    full = get(app, TOKEN, query_string={"format": "prometheus"}).get_data(as_text=True)
    assert 'pa_dbhealth_connection_limit{database="default"} 3' in full
    assert "pa_dbhealth_connect_handoffs_total" in full


def test_a_full_cap_is_503_and_anonymous_callers_learn_only_the_status(
    make_app: Callable[..., Flask], raw_connections: Any, server: Any
) -> None:
    app = make_app(FITTED, {"HEALTH_TOKEN": TOKEN, "CONNECT_RETRY": 30.0})
    raw_connections(3)
    started = time.monotonic()
    anonymous = get(app)
    assert time.monotonic() - started < 5  # one attempt, not the CONNECT_RETRY budget
    assert anonymous.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert anonymous.get_data(as_text=True) == '{"status": "critical"}'
    before = sqlalchemy_tracker.figures()
    gave_up = before["connect_giveups"]  # this process's, earlier tests' included
    db = get(app, TOKEN).get_json()["databases"]["default"]
    assert db["error"] == "connection cap reached" and db["detail"].startswith("(1226)")
    # A refused look is counted as the Django face counts it: not a give-up, nobody waited.
    assert sqlalchemy_tracker.figures()["probes_refused"] == before["probes_refused"] + 1
    assert db["process"]["connect_giveups"] == gave_up
    for text_ in (anonymous.get_data(as_text=True),):
        assert server.host not in text_ and "1226" not in text_ and "app" not in text_


def test_the_view_leaves_no_connection_behind(
    make_app: Callable[..., Flask], account_ids: Callable[[], list[int]], settled_ids: Any
) -> None:
    app = make_app(FITTED, {"HEALTH_TOKEN": TOKEN})
    before = account_ids()
    assert get(app, TOKEN).status_code == HTTPStatus.OK
    assert settled_ids(lambda ids: ids == before) == before


def test_the_demo_page(server: Any, admin: Any) -> None:
    """flask_demo's listarEmissores, on a table of its own."""
    sys.path.insert(0, str(ROOT))
    env = {"DB_HOST": server.host, "DB_PORT": str(server.port), "DB_NAME": server.database}
    env |= {"DB_USER": server.user, "DB_PASSWORD": server.password, "DEMO_WORKERS": "2"}
    old = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        from flask_demo.app import create_app, db

        app = create_app()
        runner = app.test_cli_runner()
        assert "5 emissores in all." in runner.invoke(args=["seed"]).output
        page = app.test_client().get("/").get_data(as_text=True)
        assert "Emissor 1 (00.000.000/0001-01)" in page
        with app.app_context():
            db.session.execute(text("DROP TABLE emissor"))
            db.session.commit()
            db.engine.dispose()
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        sys.path.remove(str(ROOT))
    wait_until_settled(admin)


def test_dbhealth_twice_on_one_app(make_app: Callable[..., Flask]) -> None:
    app = make_app(FITTED)
    extension = app.extensions["pa_dbhealth"]
    extension.init_app(app)  # the same extension again: ignored
    assert app.extensions["pa_dbhealth"] is extension
    assert invoke(app, "dbcheck").exit_code in (0, 1)  # still one set of commands that work
    with pytest.raises(RuntimeError, match="already set up on this app by another DbHealth"):
        DbHealth(app, db=extension.db)


def test_a_wait_that_gave_up_is_in_the_wait_figures(
    make_app: Callable[..., Flask], raw_connections: Any
) -> None:
    app = make_app(FITTED, {"HEALTH_TOKEN": TOKEN, "CONNECT_RETRY": 0.5})
    before = get(app, TOKEN).get_json()["waits"]
    raw_connections(3)  # outsiders hold the whole cap
    with app.app_context():
        engine = app.extensions["sqlalchemy"].engine
        started = time.monotonic()
        with pytest.raises(Exception, match="1226"):
            engine.connect()
        took = time.monotonic() - started
    after = get(app, TOKEN).get_json()["waits"]
    text_ = get(app, TOKEN, query_string={"format": "prometheus"}).get_data(as_text=True)
    print(f"\nwaited {took:.2f} s; figures after: {after}")
    assert after["count"] == before["count"] + 1
    assert 0.4 <= after["sum"] - before["sum"] <= took
    giveups = after["counters"]["giveups"][""]
    assert giveups == before["counters"].get("giveups", {}).get("", 0) + 1
    assert f"pa_dbhealth_connect_wait_giveups_total {giveups}" in text_
    assert f"pa_dbhealth_connect_wait_seconds_count {after['count']}" in text_
