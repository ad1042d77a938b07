"""Error classification, fed with errors the real server raises."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from pa_dbhealth.core.errors import Kind, classify


def test_cap_error_from_the_server(raw_connections: Any) -> None:
    raw_connections(3)
    with pytest.raises(Exception) as excinfo:
        raw_connections(1)
    classified = classify(excinfo.value)
    assert classified.kind is Kind.ACCOUNT_CAP
    assert classified.kind.is_cap
    assert classified.code == 1226
    assert classified.resource == "max_user_connections"
    assert classified.short.startswith("(1226) User 'app' has exceeded")


def test_hourly_quota_from_the_server(server: Any, admin: Any) -> None:
    admin.execute(
        "CREATE USER 'quota'@'%' IDENTIFIED BY 'quota-pass' WITH MAX_CONNECTIONS_PER_HOUR 1"
    )
    try:
        import MySQLdb

        first = MySQLdb.connect(
            host=server.host, port=server.port, user="quota", password="quota-pass"
        )
        first.close()

        with pytest.raises(MySQLdb.OperationalError) as excinfo:
            MySQLdb.connect(host=server.host, port=server.port, user="quota", password="quota-pass")
        classified = classify(excinfo.value)
        assert classified.code == 1226
        assert classified.resource == "max_connections_per_hour"
        assert classified.kind is Kind.HOURLY_QUOTA
        assert not classified.kind.is_cap
    finally:
        admin.execute("DROP USER 'quota'@'%'")


def test_access_denied_and_unknown_database(server: Any) -> None:
    import MySQLdb

    with pytest.raises(MySQLdb.OperationalError) as denied:
        MySQLdb.connect(host=server.host, port=server.port, user="app", password="wrong")
    assert classify(denied.value).kind is Kind.ACCESS_DENIED
    with pytest.raises(MySQLdb.OperationalError) as unknown:
        MySQLdb.connect(
            host=server.host,
            port=server.port,
            user="admin",
            password=server.admin_password,
            database="nope",
        )
    assert classify(unknown.value).kind is Kind.UNKNOWN_DATABASE


def test_django_wrapped_errors_are_unwrapped() -> None:
    from django.db.utils import OperationalError

    try:
        try:
            raise RuntimeError(2006, "Server has gone away")
        except RuntimeError as inner:
            raise OperationalError(*inner.args) from inner
    except OperationalError as outer:
        assert classify(outer).kind is Kind.LOST


def test_pymysql_errors_are_classified_by_their_mysql_code() -> None:
    # PyMySQL 1.2 gives its errors the SQLSTATE too; the MySQL code is what tells them apart.
    pymysql = pytest.importorskip("pymysql")
    error = pymysql.err.OperationalError(1227, "Access denied; you need PROCESS", sqlstate="42000")
    found = classify(error)
    assert found.code == 1227
    cap = pymysql.err.OperationalError(
        1226, "User 'app' has exceeded the 'max_user_connections' resource", sqlstate="42000"
    )
    assert classify(cap).kind is Kind.ACCOUNT_CAP


@pytest.mark.parametrize("driver", ["MySQLdb", "pymysql"])
def test_a_lost_connection_says_the_words_people_search_for_once(
    server: Any, admin: Any, driver: str
) -> None:
    """A connection the server killed, used again: MariaDB's client library says "Lost
    connection to server" / "Server has gone away", MySQL's and PyMySQL say the words people
    search for; the short form has those words exactly once either way."""
    module = pytest.importorskip(driver)
    conn = module.connect(
        host=server.host, port=server.port, user=server.user, password=server.password
    )
    try:
        cursor = conn.cursor()
        cursor.execute("SELECT CONNECTION_ID()")
        admin.execute("KILL %s", [cursor.fetchone()[0]])
        with pytest.raises(module.OperationalError) as lost:
            cursor.execute("SELECT 1")
    finally:
        with contextlib.suppress(Exception):
            conn.close()
    found = classify(lost.value)
    assert found.kind is Kind.LOST and found.code in (2006, 2013)
    phrase = {2006: "MySQL server has gone away", 2013: "Lost connection to MySQL server"}
    assert found.short.startswith(f"({found.code}) ")
    assert found.short.count(phrase[found.code]) == 1, found.short


def test_the_findings_name_a_lost_connection_as_people_search_for_it() -> None:
    from pa_dbhealth.core import findings

    assert findings.lost_error("mysql") == "(2006, 'MySQL server has gone away')"
    e004 = findings.kept_past_timeout("CONN_MAX_AGE", "600", 300, "mysql", "fix")
    assert e004.message.count("MySQL server has gone away") == 1
    i012 = findings.net_read_timeout("'default'", 30, "fix")
    assert i012.message.count("Lost connection to MySQL server") == 1
