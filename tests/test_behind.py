"""What stands between the app and the server (core.behind): noticed through a proxy in
front of the suite's MariaDB, judged by PgBouncer's version and mode; and the pins log's
bounds and its files' robustness (core.pin_log)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import AddAlias, run_command
from proxy import Proxy, settings_through

from pa_dbhealth.core import behind, pin_log, pins, private_files
from pa_dbhealth.core.options import effective, problems
from pa_dbhealth.core.vendors.pooler import PgBouncerFacts, ServerPlace


@pytest.mark.usefixtures("unblocked_db")
def test_a_proxy_in_front_of_mysql_is_noticed_by_the_servers_own_port(
    proxy: Proxy, server: Any, temporary_alias: AddAlias
) -> None:
    alias = temporary_alias("proxied", settings_through(proxy, server.database_settings()))
    out, _, _ = run_command("dbcheck", "--database", alias, "--format", "json")
    report = json.loads(out)["databases"][alias]
    (found,) = [f for f in report["findings"] if f["id"] == "pa_dbhealth.I036"]
    assert "through a proxy or multiplexer (ProxySQL, MySQL Router or MaxScale)" in found["message"]
    assert (
        f"listens on port {server.port}; the app connects to port {proxy.port}"
        in (found["message"])
    )
    assert "pa_dbhealth.W037" not in {f["id"] for f in report["findings"]}  # Django's PG only
    direct, _, _ = run_command("dbcheck", "--database", "default", "--format", "json")
    ids = [f["id"] for f in json.loads(direct)["databases"]["default"]["findings"]]
    assert "pa_dbhealth.I036" not in ids


def _pgbouncer(version: str, mode: str = "transaction", prepared: int = 0) -> PgBouncerFacts:
    return PgBouncerFacts(version, mode, 3, 100, prepared)


@pytest.mark.parametrize(
    ("facts", "error"),
    [
        (_pgbouncer("1.18.0"), True),
        (_pgbouncer("1.21.0"), True),  # max_prepared_statements = 0: still off
        (_pgbouncer("1.21.0", prepared=100), False),
        (_pgbouncer("1.18.0", mode="session"), False),
    ],
)
def test_prepared_statements_depend_on_pgbouncers_version_and_mode(
    facts: PgBouncerFacts, error: bool
) -> None:
    between = behind.notice("postgresql", 6432, ServerPlace(5432, "10.0.0.2"), lambda: facts)
    assert between is not None and between.name == f"PgBouncer {facts.version}"
    found = behind.judge(
        "'x'", between, kept="CONN_MAX_AGE", server_side_cursors=None, prepares="fix"
    )
    assert ("pa_dbhealth.E034" in {f.id for f in found}) is error


def test_nothing_in_between_when_the_ports_agree_or_a_socket_is_used() -> None:
    def never() -> None:
        raise AssertionError("PgBouncer's console asked with nothing in between")

    assert behind.notice("postgresql", 5432, ServerPlace(5432, "db"), never) is None
    port = behind.configured_port("mysql", "/var/run/mysqld/mysqld.sock", "")
    assert behind.notice("mysql", port, ServerPlace(3306, "db"), None) is None
    assert behind.configured_port("postgresql", "db", "") == 5432
    assert behind.configured_port("postgresql", "", "5432") is None  # libpq: the socket
    assert behind.configured_port("mysql", "localhost", "3306") is None  # mysqlclient: too
    through_socket = behind.notice("postgresql", 6432, ServerPlace(None, None), lambda: None)
    assert through_socket is not None and "sees a Unix-socket connection" in through_socket.evidence


def test_sites_are_bounded_and_a_pin_without_a_site_is_not_counted(tmp_path: Path) -> None:
    for n in range(pin_log.MAX_SITES + 5):
        pin_log.note("SELECT GET_LOCK('a', 1)", "mysql", lambda n=n: (f"app.py:{n} in f", None))
    pin_log.note("SELECT GET_LOCK('a', 1)", "mysql", lambda: (None, None))
    assert len(pin_log.sites()) == pin_log.MAX_SITES
    assert {s.count for s in pin_log.sites()} == {1}


def test_other_processes_files_are_summed_and_bad_ones_left_out(tmp_path: Path) -> None:
    directory = tmp_path / "holders-pins"
    good = {
        "sites": [
            {
                "site": "a.py:1 in f",
                "rule": "GET_LOCK",
                "what": "GET_LOCK",
                "vendor": "mysql",
                "count": 4,
            }
        ]
    }
    bad_count = {"sites": [{**good["sites"][0], "count": "many"}]}
    with private_files.private_directory(directory, create=True) as fd:
        private_files.write_atomically(fd, "pins-h-1.json", json.dumps(good).encode())
        private_files.write_atomically(fd, "pins-h-2.json", json.dumps(good).encode())
        private_files.write_atomically(fd, "pins-h-3.json", json.dumps(bad_count).encode())
        private_files.write_atomically(fd, "pins-h-4.json", b"{not json")
    pin_log.note("SELECT GET_LOCK('a', 1)", "mysql", lambda: ("a.py:1 in f", None))
    (site,) = pin_log.read_all(directory)
    assert (site.site, site.count) == ("a.py:1 in f", 9)


@pytest.mark.parametrize("value", [["pgbouncr"], "nope", 3, [None]])
def test_a_bad_pin_rules_names_the_key_and_the_names(value: Any) -> None:
    (problem,) = problems({"PIN_RULES": value})
    assert problem.key == "PIN_RULES"
    assert "proxysql, mysql-router, maxscale, pgbouncer" in problem.message
    assert effective({"PIN_RULES": value}).pin_rules() == pins.MULTIPLEXERS


def test_pin_rules_chooses_the_multiplexers_one_name_or_none() -> None:
    assert problems({"PIN_RULES": []}) == problems({"PIN_RULES": "pgbouncer"}) == []
    assert effective({"PIN_RULES": "pgbouncer"}).pin_rules() == ("pgbouncer",)
    assert effective({"PIN_RULES": []}).pin_rules() == ()
