"""dbcheck and the audit: each finding triggered by a real configuration, absent when fixed."""

from __future__ import annotations

import ast
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import run_command, wait_until_settled
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections
from django.db.utils import load_backend
from django.test import override_settings
from processes import Finished

from pa_dbhealth import half_switched
from pa_dbhealth.checks import check_databases

mysql = pytest.mark.django_db(transaction=True, databases=["default", "audited"])
HYGIENE = "pa_dbhealth.middleware.ConnectionHygieneMiddleware"


def dbcheck(*args: str) -> Finished:
    """Run ``manage.py dbcheck``; returns ``(stdout, stderr, exit code)``."""
    return run_command("dbcheck", *args)


def ids(*args: str, alias: str = "default") -> list[str]:
    out, _, _ = dbcheck("--database", alias, "--format", "json", "--fail-level", "info", *args)
    return [f["id"] for f in json.loads(out)["databases"][alias]["findings"]]


@pytest.fixture
def make_alias() -> Iterator[Callable[..., str]]:
    """The ``audited`` alias (the suite's server and account) with some settings changed,
    as Django itself would build the connection for them."""
    original, original_settings = connections["audited"], connections.settings["audited"]
    made: list[Any] = []

    def make(**overrides: Any) -> str:
        settings_dict = {**original_settings, **overrides}
        wrapper = load_backend(settings_dict["ENGINE"]).DatabaseWrapper(settings_dict, "audited")
        made.append(wrapper)
        connections["audited"] = wrapper
        connections.settings["audited"] = settings_dict
        return "audited"

    yield make
    for wrapper in made:
        wrapper.close()
    pools = sys.modules.get("dj_db_conn_pool.core")
    if pools is not None and "audited" in pools.pool_container:
        pools.pool_container.pop("audited").dispose()  # the pool's connections, really closed
    connections["audited"] = original
    connections.settings["audited"] = original_settings


@mysql
@pytest.mark.parametrize(
    ("age", "health", "present", "absent"),
    [
        (600, True, ["pa_dbhealth.E004"], ["pa_dbhealth.E005", "pa_dbhealth.W006"]),
        (None, True, ["pa_dbhealth.E005"], ["pa_dbhealth.E004", "pa_dbhealth.W006"]),
        (60, False, ["pa_dbhealth.W006"], ["pa_dbhealth.E004", "pa_dbhealth.E005"]),
        (280, True, [], ["pa_dbhealth.E004", "pa_dbhealth.E005", "pa_dbhealth.W006"]),
        (0, False, [], ["pa_dbhealth.E004", "pa_dbhealth.E005", "pa_dbhealth.W006"]),
    ],
)
def test_conn_max_age_against_the_real_timeout(
    make_alias: Any, age: int | None, health: bool, present: list[str], absent: list[str]
) -> None:
    alias = make_alias(CONN_MAX_AGE=age, CONN_HEALTH_CHECKS=health)
    found = ids(alias=alias)
    assert all(i in found for i in present), found
    assert not any(i in found for i in absent), found


@mysql
def test_conn_max_age_message_has_the_real_figures(make_alias: Any, wait_timeout: Any) -> None:
    wait_timeout(120)
    alias = make_alias(CONN_MAX_AGE=600, CONN_HEALTH_CHECKS=True)
    out, _, code = dbcheck("--database", alias)
    assert code == 1
    assert "CONN_MAX_AGE'] = 600 but the server closes connections idle for 120 s" in out
    assert (
        "fix: Set DATABASES['audited']['CONN_MAX_AGE'] = 100 or less (the server's 120 s minus "
        "TIMEOUT_MARGIN 20)" in out
    )


@mysql
def test_conn_max_age_fix_uses_the_limit_it_applies_when_the_timeout_is_short(
    make_alias: Any, wait_timeout: Any
) -> None:
    """With a timeout not above TIMEOUT_MARGIN the stale limit is half the timeout, and the
    fix must say that figure, not timeout minus margin (a negative number)."""
    wait_timeout(10)
    alias = make_alias(CONN_MAX_AGE=60, CONN_HEALTH_CHECKS=True)
    out, _, code = dbcheck("--database", alias)
    assert code == 1
    assert (
        "fix: Set DATABASES['audited']['CONN_MAX_AGE'] = 5 or less (half the server's 10 s, "
        "since TIMEOUT_MARGIN 20 is not smaller)" in out
    )
    assert "pa_dbhealth.W016" in out


@mysql
@pytest.mark.parametrize(
    ("workers", "tasks", "expected"),
    [
        (4, 0, "pa_dbhealth.E007"),
        (3, 0, "pa_dbhealth.W008"),
        (2, 1, "pa_dbhealth.W008"),
        (2, 0, None),
    ],
)
def test_connection_budget_against_the_real_cap(
    workers: int, tasks: int, expected: str | None
) -> None:
    with override_settings(PA_DBHEALTH={"WORKERS": workers, "TASK_CONNECTIONS": tasks}):
        found = ids()
        out, _, _ = dbcheck("--database", "default")
    budget = [i for i in found if i in ("pa_dbhealth.E007", "pa_dbhealth.W008")]
    assert budget == ([expected] if expected else [])
    assert "pa_dbhealth.I019" not in found
    if expected == "pa_dbhealth.E007":
        assert "may hold 3 connections, but the site can open 4 at once" in out
        assert "Run at most 3 concurrent web worker(s)" in out


@mysql
def test_the_retrying_backend_over_the_cap_queues_rather_than_fails(make_alias: Any) -> None:
    alias = make_alias(ENGINE="pa_dbhealth.backends.mysql")
    with override_settings(PA_DBHEALTH={"WORKERS": 6}):
        out, _, _ = dbcheck("--database", alias)
    assert "pa_dbhealth.W022" in out and "pa_dbhealth.E007" not in out
    assert "waits in pa_dbhealth's line instead of failing" in out
    with override_settings(PA_DBHEALTH={"WORKERS": 6, "LINE": False}):
        out, _, _ = dbcheck("--database", alias)
    assert "pa_dbhealth.E007" in out  # without the line, nothing makes it wait its turn


@mysql
def test_a_second_alias_on_the_same_account_counts_twice(make_alias: Any) -> None:
    make_alias(TEST={})  # not a test mirror: a real second alias
    with override_settings(PA_DBHEALTH={"WORKERS": 2}):
        assert "pa_dbhealth.E007" in ids()


@mysql
def test_workers_unknown_is_said() -> None:
    assert "pa_dbhealth.I019" in ids()


@mysql
@pytest.mark.parametrize(
    ("pool_options", "present"),
    [
        ({}, ["pa_dbhealth.E009", "pa_dbhealth.E010"]),  # the package's defaults: 10 + 10, 900 s
        ({"POOL_SIZE": 2, "MAX_OVERFLOW": 1, "RECYCLE": 280}, []),
        ({"POOL_SIZE": 2, "MAX_OVERFLOW": 1, "RECYCLE": -1}, ["pa_dbhealth.E010"]),
    ],
)
def test_django_db_connection_pool(
    make_alias: Any, pool_options: dict[str, int], present: list[str]
) -> None:
    pytest.importorskip("dj_db_conn_pool")
    alias = make_alias(ENGINE="dj_db_conn_pool.backends.mysql", POOL_OPTIONS=pool_options)
    out, _, _ = dbcheck("--database", alias, "--format", "json")
    report = json.loads(out)["databases"][alias]
    assert report["source"] == "server"  # it really connected through the pool backend
    found = [f["id"] for f in report["findings"]]
    assert [i for i in found if i in ("pa_dbhealth.E009", "pa_dbhealth.E010")] == present
    if "pa_dbhealth.E009" in present:
        (finding,) = [f for f in report["findings"] if f["id"] == "pa_dbhealth.E009"]
        assert (
            "up to 20 connections per process (size 10 + overflow 10) but the account may hold 3"
            in finding["message"]
        )
        assert "'POOL_SIZE': 2, 'MAX_OVERFLOW': 1, 'RECYCLE': 280" in finding["hint"]


@pytest.mark.usefixtures("unblocked_db")
def test_django_postgresql_pool_offline(make_alias: Any) -> None:
    pytest.importorskip("psycopg")
    alias = make_alias(
        ENGINE="django.db.backends.postgresql",
        HOST="127.0.0.1",
        PORT="9",
        OPTIONS={"pool": True},
        CONN_MAX_AGE=0,
    )
    found = ids("--offline", alias=alias)
    assert "pa_dbhealth.E009" in found  # psycopg_pool's default of 4 > the cap of 3
    assert "pa_dbhealth.E010" in found  # max_lifetime 3600 s > 280 s
    assert "pa_dbhealth.I012" not in found  # no MySQL advice for PostgreSQL
    fixed = make_alias(
        ENGINE="django.db.backends.postgresql",
        HOST="127.0.0.1",
        PORT="9",
        OPTIONS={"pool": {"min_size": 1, "max_size": 3, "max_lifetime": 250}},
        CONN_MAX_AGE=0,
    )
    assert not {"pa_dbhealth.E009", "pa_dbhealth.E010"} & set(ids("--offline", alias=fixed))


@pytest.mark.usefixtures("unblocked_db")
def test_unreachable_server_is_one_line_with_host_port_and_driver_message() -> None:
    out, err, code = dbcheck("--database", "unreachable")
    assert code == 1
    (line,) = [line for line in out.splitlines() if "pa_dbhealth.E011" in line]
    assert "Cannot reach the database server of 'unreachable' at 127.0.0.1:9: (2002" in line or (
        "at 127.0.0.1:9: (2003" in line
    )
    assert "Traceback" not in out + err
    # With the server down, that error is what matters: no findings on assumed figures.
    assert out.splitlines() == [
        "unreachable (mysql; the server could not be asked)",
        line,
        out.splitlines()[2],  # its fix
        "",
        "dbcheck: 1 error (1 at or above error).",
    ]
    assert out.splitlines()[2].strip().startswith("fix: Check HOST and PORT in DATABASES")


@mysql
def test_cap_full_is_a_clear_connect_error(raw_connections: Any, make_alias: Any) -> None:
    alias = make_alias()
    connections["default"].close()
    raw_connections(3)
    out, _, code = dbcheck("--database", alias)
    assert code == 1
    assert "pa_dbhealth.E018: Cannot connect to 'audited': (1226)" in out
    assert "dbconnections" in out


@mysql
def test_wrong_password(make_alias: Any) -> None:
    alias = make_alias(PASSWORD="wrong")
    out, _, _ = dbcheck("--database", alias)
    assert "pa_dbhealth.E018: Cannot connect to 'audited': (1045)" in out
    assert "Check USER and PASSWORD" in out


@mysql
def test_net_read_timeout_and_middleware_infos() -> None:
    found = ids()
    assert "pa_dbhealth.I012" in found
    middleware = ["django.contrib.sessions.middleware.SessionMiddleware", HYGIENE]
    with override_settings(MIDDLEWARE=middleware):
        assert "pa_dbhealth.I013" not in ids()
    with override_settings(MIDDLEWARE=middleware[:1]):
        assert "pa_dbhealth.I013" in ids()


@mysql
def test_connection_idle_past_the_timeout(wait_timeout: Any, raw_connections: Any) -> None:
    wait_timeout(2)
    (lingering,) = raw_connections(1)
    lingering.cursor().execute("SET SESSION wait_timeout = 60")  # like a console would
    time.sleep(3.2)
    out, _, _ = dbcheck("--database", "default", "--format", "json", "--fail-level", "info")
    findings = json.loads(out)["databases"]["default"]["findings"]
    (finding,) = [f for f in findings if f["id"] == "pa_dbhealth.W014"]
    assert f"Connection {lingering.thread_id()} " in finding["message"]
    assert "longer than the server's 2 s timeout" in finding["message"]


@mysql
def test_no_connection_idle_past_the_timeout_normally() -> None:
    assert "pa_dbhealth.W014" not in ids()


@mysql
def test_offline_connects_to_nothing(account_ids: Any, settled_ids: Any) -> None:
    connections["default"].close()
    before = account_ids()
    with override_settings(PA_DBHEALTH={"SERVER_IDLE_TIMEOUT": 100, "CONNECTION_LIMIT": 2}):
        out, _, _ = dbcheck("--offline", "--database", "default", "--format", "json")
    assert connections["default"].connection is None
    assert settled_ids(lambda ids: ids == before) == before
    report = json.loads(out)["databases"]["default"]
    assert report["source"] == "settings"
    assert report["server"]["wait_timeout"] == 100 and report["server"]["account_limit"] == 2
    (finding,) = [f for f in report["findings"] if f["id"] == "pa_dbhealth.I015"]
    assert "(--offline)" in finding["message"] and "100 s" in finding["message"]


@mysql
def test_dbcheck_closes_what_it_opened_and_opens_one_connection(
    account_ids: Any, settled_ids: Any
) -> None:
    connections["default"].close()
    before = account_ids()
    out, _, _ = dbcheck("--database", "default", "--format", "json")
    assert json.loads(out)["databases"]["default"]["server"]["connections"] == len(before) + 1
    assert settled_ids(lambda ids: ids == before) == before
    assert connections["default"].connection is None


@mysql
def test_margin_not_smaller_than_timeout_is_clamped(wait_timeout: Any) -> None:
    wait_timeout(30)
    with override_settings(PA_DBHEALTH={"TIMEOUT_MARGIN": 45}):
        out, _, _ = dbcheck("--database", "default", "--format", "json", "--fail-level", "info")
    report = json.loads(out)["databases"]["default"]
    assert report["server"]["idle_limit"] == 15
    assert "pa_dbhealth.W016" in [f["id"] for f in report["findings"]]
    assert "pa_dbhealth.W016" not in ids()


@pytest.mark.usefixtures("unblocked_db")
def test_sqlite_gets_a_note_not_an_error() -> None:
    out, _, code = dbcheck("--database", "sqlite")
    assert code == 0
    assert "pa_dbhealth.I017" in out and "not a server" in out
    assert ids(alias="sqlite") == ["pa_dbhealth.I017"]  # the suite site has the middleware


@mysql
def test_json_has_the_documented_shape() -> None:
    out, _, _ = dbcheck("--database", "default", "--format", "json")
    body = json.loads(out)
    assert list(body) == ["databases"]
    report = body["databases"]["default"]
    assert {"vendor", "server", "findings"} <= set(report)
    assert report["vendor"] == "mysql"
    server = report["server"]
    for key in (
        "flavour",
        "version",
        "wait_timeout",
        "net_read_timeout",
        "account_limit",
        "connections",
    ):
        assert key in server
    assert server["account_limit"] == 3 and server["wait_timeout"] == 300
    for finding in report["findings"]:
        assert set(finding) == {"id", "level", "message", "hint"}
        assert finding["level"] in ("info", "warning", "error")
        assert (
            finding["id"].startswith("pa_dbhealth.")
            and finding["id"][12] == finding["level"][0].upper()
        )
    levels = [f["level"] for f in report["findings"]]
    order = {"error": 0, "warning": 1, "info": 2}
    assert levels == sorted(levels, key=order.__getitem__)


@mysql
def test_exit_codes_follow_the_fail_level() -> None:
    # The suite's site: infos only (I012, I019), no warning, no error.
    assert dbcheck("--database", "default")[2] == 0
    assert dbcheck("--database", "default", "--fail-level", "warning")[2] == 0
    _, err, code = dbcheck("--database", "default", "--fail-level", "info")
    assert code == 1 and "at or above info" in err
    with override_settings(PA_DBHEALTH={"WORKERS": 3}):
        assert dbcheck("--database", "default", "--fail-level", "warning")[2] == 1
        assert dbcheck("--database", "default")[2] == 0


def test_unknown_alias_and_bad_arguments_are_usage_errors() -> None:
    with pytest.raises(CommandError, match="invalid choice: 'nope'"):
        call_command("dbcheck", "--database", "nope")
    with pytest.raises(CommandError, match="invalid choice: 'fatal'"):
        call_command("dbcheck", "--fail-level", "fatal")
    with pytest.raises(CommandError, match="invalid choice: 'xml'"):
        call_command("dbcheck", "--format", "xml")


@mysql
def test_text_report_header_has_the_server_facts(server: Any, admin: Any) -> None:
    wait_until_settled(admin)  # "1 open now": no closing connection of an earlier test
    out, _, _ = dbcheck("--database", "default")
    assert (
        f"default: {server.flavour} {server.version} at {server.host}:{server.port} as app@" in out
    )
    assert "wait_timeout 300 s, interactive_timeout 300 s, net_read_timeout 30 s" in out
    assert "account cap 3 connections, 1 open now" in out
    assert "connections count as stale after 280 s idle" in out


@mysql
def test_the_readmes_pythonanywhere_settings_pass_their_own_audit(
    make_alias: Any, settings: Any
) -> None:
    """What the README tells PythonAnywhere users to write must not earn them a warning."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("## On PythonAnywhere", 1)[1].split("\n## ", 1)[0]
    block = section.split("```python", 1)[1].split("```", 1)[0]
    database = re.search(r'"default": (\{.*?\n    \})', block, re.DOTALL)
    options = re.search(r"PA_DBHEALTH = (\{.*?\})", block)
    assert database is not None and options is not None
    advised = ast.literal_eval(re.sub(r'"(NAME|USER|PASSWORD|HOST)": "[^"]*",', "", database[1]))
    settings.PA_DBHEALTH = ast.literal_eval(options[1])
    alias = make_alias(**advised)
    assert connections[alias].settings_dict["ENGINE"] == "pa_dbhealth.backends.mysql"
    report = json.loads(dbcheck("--database", alias, "--format", "json")[0])["databases"][alias]
    assert report["source"] == "server"
    assert [f["id"] for f in report["findings"] if f["level"] != "info"] == []


@pytest.mark.usefixtures("unblocked_db")
@pytest.mark.parametrize(
    ("setting", "found"),
    [
        ({"WORKER": 2}, "pa_dbhealth.E002"),
        ({"WORKERS": -1}, "pa_dbhealth.E003"),
        ({"HEALTH_CONNECT_TIMEOUT": float("nan")}, "pa_dbhealth.E003"),
        pytest.param({"HEALTH_CONNECT_TIMEOUT": 10**5000}, "pa_dbhealth.E003", id="10**5000"),
        (["WORKERS", 2], "pa_dbhealth.E001"),
    ],
)
def test_pa_dbhealth_mistakes_fail_dbcheck(settings: Any, setting: Any, found: str) -> None:
    """The budget would otherwise be judged on the default silently."""
    settings.PA_DBHEALTH = setting
    out, err, code = dbcheck("--database", "sqlite")
    assert code == 1, out + err
    assert f"ERROR   {found}: PA_DBHEALTH" in out
    assert out.splitlines()[-1] == "dbcheck: 1 error, 1 info (1 at or above error)."


def test_a_half_switched_entry_is_one_finding_and_no_connection(make_alias: Any) -> None:
    # No database access is allowed here: a connect would fail the test.
    alias = make_alias(NAME=Path("/srv/site/db.sqlite3"), USER="", PASSWORD="")
    out, err, code = dbcheck("--database", alias, "--format", "json")
    assert code == 1, err
    report = json.loads(out)["databases"][alias]
    assert report["source"] == "settings"
    assert [f["id"] for f in report["findings"]] == ["pa_dbhealth.E025"]
    assert "NAME is the file path '/srv/site/db.sqlite3'" in report["findings"][0]["message"]
    assert report["findings"][0]["hint"].startswith(
        "Set DATABASES['audited']['NAME'], ['USER'] and ['PASSWORD'] to your MySQL database's"
    )
    # The system checks say it once, without a database; the database-tagged audit, which
    # would say it too, leaves it to them.
    static = [m.id for m in run_checks(databases=[]) if m.id in half_switched.IDS]
    assert static == ["pa_dbhealth.E025"]
    assert [m.id for m in check_databases(databases=[alias])] == []


@mysql
def test_an_entry_without_user_is_a_warning_and_still_audited(make_alias: Any) -> None:
    alias = make_alias(USER="")
    out, _, _ = dbcheck("--database", alias, "--format", "json")
    found = {f["id"]: f for f in json.loads(out)["databases"][alias]["findings"]}
    assert "pa_dbhealth.E018" in found  # it did try to log in, as the login user
    assert found["pa_dbhealth.W026"]["message"].startswith(
        "DATABASES['audited'] has the MySQL ENGINE 'django.db.backends.mysql' and no USER: "
        "the MySQL client then uses the login user for USER"
    )
    assert "Set DATABASES['audited']['USER'] (" in found["pa_dbhealth.W026"]["hint"]


@pytest.mark.usefixtures("unblocked_db")
def test_a_short_token_is_a_warning_that_never_shows_it(settings: Any) -> None:
    settings.PA_DBHEALTH = {"HEALTH_TOKEN": " " * 15 + "tiny-secret"}
    out, err, code = dbcheck("--database", "sqlite")
    assert code == 0, out + err
    assert "WARNING pa_dbhealth.W029: PA_DBHEALTH['HEALTH_TOKEN'] = '...' has 11 characters" in out
    assert "tiny-secret" not in out + err


REFUSED = (
    "ERROR   pa_dbhealth.E028: The registry of holders is off: /tmp is open to other users "
    "(mode 1777): not used."
)


@pytest.mark.usefixtures("unblocked_db")
def test_a_shared_registry_dir_is_e028_with_a_safe_fix(settings: Any) -> None:
    settings.PA_DBHEALTH = {"REGISTRY_DIR": "/tmp"}
    out, err, code = dbcheck("--database", "sqlite")
    assert code == 1, out + err
    assert out.count("pa_dbhealth.E028") == 1 and REFUSED in out
    assert (
        "fix: Remove PA_DBHEALTH['REGISTRY_DIR'] to use the default, "
        "~/.cache/pa_dbhealth/holders, or set it to another new directory only this account uses"
    ) in out
    assert "chmod" not in out and "Leave the mode of /tmp as it is" in out
    assert oct(os.stat("/tmp").st_mode & 0o7777) == "0o1777"


@pytest.mark.usefixtures("unblocked_db")
def test_a_registry_not_there_yet_or_turned_off_is_no_finding(
    settings: Any, tmp_path: Path
) -> None:
    for setting in (str(tmp_path / "not-yet"), False):
        settings.PA_DBHEALTH = {"REGISTRY_DIR": setting}
        out, err, code = dbcheck("--database", "sqlite")
        assert code == 0 and "E028" not in out, out + err
