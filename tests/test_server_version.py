"""E031/I033: the server's version against the Django that talks to it, with a server that
says it is older than it is (the proxy rewrites its version, greeting and VERSION() alike)."""

from __future__ import annotations

import datetime
import itertools
import json
from typing import Any

import pytest
from conftest import AddAlias, run_command
from django.db import NotSupportedError, connections
from proxy import Proxy, settings_through

from pa_dbhealth.core.server_support import MINIMUMS, dotted, version_findings
from pa_dbhealth.server_version import RELEASE

DEC_2026 = datetime.date(2026, 12, 7)
ALIASES = itertools.count()  # Django checks an alias's server version once per process


@pytest.mark.parametrize("mariadb", [True, False])
def test_the_table_holds_the_running_djangos_own_minimum(mariadb: bool) -> None:
    probe = connections.create_connection("default")
    probe.__dict__["mysql_is_mariadb"] = mariadb  # what the flavour decides, without a server
    flavour = "MariaDB" if mariadb else "MySQL"
    assert MINIMUMS[RELEASE][flavour] == probe.features.minimum_database_version


def test_django_6_1_against_mysql_8_0_says_stay_on_5_2_lts() -> None:
    (found,) = version_findings("'default'", (6, 1), "8.0.36-0ubuntu0.22.04.1", DEC_2026)
    assert found.id == "pa_dbhealth.E031"
    assert found.message == (
        "The server of 'default' is MySQL 8.0.36-0ubuntu0.22.04.1, but Django 6.1 requires "
        "MySQL 8.4 or later: every connection fails with NotSupportedError."
    )
    assert "Stay on Django 5.2 LTS (pip install 'Django>=5.2,<5.3'" in found.hint
    assert "supported until April 2028), or move the database to MySQL 8.4" in found.hint


def test_django_6_0_against_mysql_8_0_warns_of_6_1() -> None:
    (found,) = version_findings("'default'", (6, 0), "8.0.36", DEC_2026)
    assert found.id == "pa_dbhealth.I033"
    assert "Django 6.1 will require MySQL 8.4 or later" in found.message
    assert version_findings("'default'", (5, 2), "8.0.36", DEC_2026) == []
    assert version_findings("'default'", (6, 1), "8.4.3", DEC_2026) == []


def test_no_lts_left_for_an_old_mariadb() -> None:
    (found,) = version_findings("'default'", (5, 2), "10.4.34-MariaDB", DEC_2026)
    assert found.id == "pa_dbhealth.E031"
    assert found.hint.startswith("No supported Django release talks to MariaDB 10.4.34")
    # Before 4.2's end, 4.2 LTS was the way out.
    (earlier,) = version_findings("'default'", (5, 2), "10.4.34-MariaDB", datetime.date(2026, 1, 1))
    assert "Stay on Django 4.2 LTS" in earlier.hint


def _older_than(version: tuple[int, ...]) -> str:
    major, minor = version[0], version[1] if len(version) > 1 else 0
    return f"{major}.{minor - 1}.99-MariaDB" if minor else f"{major - 1}.11.99-MariaDB"


@pytest.fixture
def old_server(proxy: Proxy, temporary_alias: AddAlias, server: Any, unblocked_db: None) -> Any:
    """``old_server(version)``: a new alias on the suite's server, which says it runs
    ``version``; returns the alias and the version string clients see."""

    def make(version: str) -> tuple[str, str]:
        seen = proxy.pretend_version(version)
        # Django checks an alias's version once per process: a new alias each time.
        alias = f"old{next(ALIASES)}"
        temporary_alias(alias, settings_through(proxy, server.database_settings()))
        return alias, seen

    return make


def test_dbcheck_reads_the_version_django_refuses(old_server: Any) -> None:
    minimum = MINIMUMS[RELEASE]["MariaDB"]
    alias, seen = old_server(_older_than(minimum))
    with pytest.raises(NotSupportedError):  # the real refusal the user meets
        connections[alias].ensure_connection()
    out, err, code = run_command("dbcheck", "--database", alias, "--format", "json")
    assert code == 1, err
    listed = json.loads(out)["databases"][alias]["findings"]
    (found,) = [f for f in listed if f["level"] == "error"]
    assert found["id"] == "pa_dbhealth.E031", listed
    assert f"is MariaDB {seen}, but Django {RELEASE[0]}.{RELEASE[1]} requires" in found["message"]
    assert f"MariaDB {dotted(minimum)} or later" in found["message"]
    out, err, code = run_command("check", "--database", alias)
    assert code == 1
    assert "pa_dbhealth.E031" in err


def test_dbcheck_says_the_next_release_will_refuse(old_server: Any) -> None:
    later = sorted(r for r in MINIMUMS if r > RELEASE)
    minimum = MINIMUMS[RELEASE]["MariaDB"]
    if not later or MINIMUMS[later[0]]["MariaDB"] == minimum:
        pytest.skip(f"the release after Django {RELEASE} needs the same MariaDB")
    alias, seen = old_server(f"{dotted(minimum)}.0-MariaDB" if len(minimum) == 2 else "")
    connections[alias].ensure_connection()  # this Django still talks to it
    connections[alias].close()
    out, err, code = run_command(
        "dbcheck", "--database", alias, "--format", "json", "--fail-level", "warning"
    )
    found = {f["id"]: f for f in json.loads(out)["databases"][alias]["findings"]}
    assert code == 0, (out, err)
    nxt = later[0]
    assert f"Django {nxt[0]}.{nxt[1]} will require MariaDB" in found["pa_dbhealth.I033"]["message"]
    assert seen in found["pa_dbhealth.I033"]["message"]
    assert found["pa_dbhealth.I033"]["hint"].startswith("Before upgrading Django past")


def test_python_m_check_judges_by_the_installed_django(
    old_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from pa_dbhealth.__main__ import main

    minimum = MINIMUMS[RELEASE]["MariaDB"]
    alias, seen = old_server(_older_than(minimum))
    db = connections[alias].settings_dict
    url = f"mysql://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    assert main(["check", "--url", url, "--format", "json", "--workers", "1"]) == 1
    listed = json.loads(capsys.readouterr().out)["databases"]["default"]["findings"]
    assert [f["id"] for f in listed if f["level"] == "error"] == ["pa_dbhealth.E031"]
    assert seen in listed[0]["message"]


@pytest.mark.urls("test_page")
@pytest.mark.usefixtures("unblocked_db")
def test_the_page_says_why_django_refuses_the_server(
    settings: Any, tmp_path: Any, proxy: Proxy, temporary_alias: AddAlias, server: Any
) -> None:
    from django.db.backends.base import base as django_base
    from test_page import TOKEN, signed_in_client, text

    settings.PA_DBHEALTH = {"HEALTH_TOKEN": TOKEN, "REGISTRY_DIR": str(tmp_path / "holders")}
    seen = proxy.pretend_version(_older_than(MINIMUMS[RELEASE]["MariaDB"]))
    temporary_alias("own", settings_through(proxy, server.database_settings()))  # /own/page/
    django_base.RAN_DB_VERSION_CHECK.discard("own")  # an earlier test's "own" passed it
    html = text(signed_in_client("/own/page/").get("/own/page/"))
    assert "pa_dbhealth.E031" in html
    assert f"is MariaDB {seen}, but Django {RELEASE[0]}.{RELEASE[1]} requires" in html
