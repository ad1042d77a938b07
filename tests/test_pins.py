"""The rule tables of what pins a connection behind a multiplexer, statement by statement
(pa_dbhealth.core.pins), and the cheap test in front of them."""

from __future__ import annotations

import pytest

from pa_dbhealth.core import pins

pytestmark = pytest.mark.matrix_once  # no framework: the same on every Django version

MYSQL_PINS = [
    ("SELECT GET_LOCK('reports', 10)", "GET_LOCK", "GET_LOCK"),
    ("select get_lock(%s, 0)", "GET_LOCK", "GET_LOCK"),
    ("SELECT @total := @total + amount FROM t", "@ user variable", "@ user variable"),
    ("SET @rank = 0", "@ user variable", "SET @"),
    ("SELECT `id` FROM t WHERE x > @`limit`", "@ user variable", "@ user variable"),
    ("SET FOREIGN_KEY_CHECKS = 0", "SET", "SET foreign_key_checks"),
    ("SET SESSION unique_checks=0", "SET", "SET unique_checks"),
    ("SET @@session.sql_safe_updates = 1", "SET", "SET sql_safe_updates"),
    ("SET @@group_concat_max_len = 100000", "SET", "SET group_concat_max_len"),
    ("SET sql_mode = 'STRICT_ALL_TABLES', max_join_size = 1000", "SET", "SET max_join_size"),
    ("CREATE TEMPORARY TABLE tmp_ids (id INT)", "CREATE TEMPORARY TABLE", "CREATE TEMPORARY TABLE"),
    (
        "SELECT SQL_CALC_FOUND_ROWS id FROM t LIMIT 10",
        "SQL_CALC_FOUND_ROWS",
        "SQL_CALC_FOUND_ROWS",
    ),
    ("LOCK TABLES t WRITE", "LOCK TABLES", "LOCK TABLES"),
    ("lock table t read", "LOCK TABLES", "LOCK TABLES"),
    ("PREPARE stmt FROM 'SELECT 1'", "PREPARE", "PREPARE"),
    ("DEALLOCATE PREPARE stmt", "PREPARE", "DEALLOCATE"),
    ("/* report */ SELECT GET_LOCK('a', 1)", "GET_LOCK", "GET_LOCK"),
]

MYSQL_SAFE = [
    "SELECT id, name FROM app_item WHERE id = %s",
    "INSERT INTO app_item (name) VALUES (%s)",
    "UPDATE app_item SET name = %s WHERE id = %s",
    "DELETE FROM app_item WHERE id = %s",
    # Django's own session SETs: tracked and replayed by the multiplexers.
    "SET SQL_AUTO_IS_NULL = 0",
    "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
    "SET SQL_AUTO_IS_NULL = 0; SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
    "SET NAMES utf8mb4",
    "SET CHARACTER SET utf8mb4",
    "SET time_zone = '+00:00'",
    "SET sql_mode = 'TRADITIONAL'",
    "SET autocommit = 1",
    "SET GLOBAL max_connections = 10",  # the server's, not the session's
    "SELECT @@version, @@wait_timeout",  # system variables, not user variables
    "SELECT 'mail@example.com'",  # an @ inside a string
    "SELECT RELEASE_LOCK('a')",
    "UNLOCK TABLES",
    "SELECT id FROM t WHERE blocked = 1 FOR UPDATE",
]

POSTGRESQL_PINS = [
    ("SELECT pg_advisory_lock(42)", "session advisory lock", "pg_advisory_lock"),
    ("SELECT pg_try_advisory_lock(1, 2)", "session advisory lock", "pg_advisory_lock"),
    ("SELECT pg_advisory_lock_shared(%s)", "session advisory lock", "pg_advisory_lock"),
    ("SET search_path TO reports, public", "SET", "SET search_path"),
    ("SET statement_timeout = 5000", "SET", "SET statement_timeout"),
    ("SET SESSION work_mem = '64MB'", "SET", "SET work_mem"),
    ("SET ROLE reporting", "SET", "SET role"),
    ("RESET ALL", "SET", "RESET all"),
    ("RESET search_path", "SET", "RESET search_path"),
    ("LISTEN jobs", "LISTEN", "LISTEN"),
    (
        'DECLARE "c1" NO SCROLL CURSOR WITH HOLD FOR SELECT 1',
        "WITH HOLD cursor",
        "DECLARE ... WITH HOLD",
    ),
    ("PREPARE q (int) AS SELECT $1", "PREPARE", "PREPARE"),
    ("DEALLOCATE ALL", "PREPARE", "DEALLOCATE"),
    ("CREATE TEMP TABLE ids (id int)", "CREATE TEMPORARY TABLE", "CREATE TEMPORARY TABLE"),
]

POSTGRESQL_SAFE = [
    "SELECT pg_advisory_xact_lock(42)",
    "SELECT pg_try_advisory_xact_lock(42)",
    "SELECT pg_advisory_unlock(42)",
    "SET LOCAL statement_timeout = 5000",  # this transaction's only
    "SET TIME ZONE 'UTC'",  # tracked by PgBouncer
    "SET application_name = 'worker'",
    "SET client_encoding TO 'UTF8'",
    "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
    "SET CONSTRAINTS ALL IMMEDIATE",
    "RESET TIME ZONE",
    "CREATE TEMP TABLE ids (id int) ON COMMIT DROP",
    "DECLARE c CURSOR FOR SELECT 1",  # without WITH HOLD: ends with its transaction
    "SELECT data @> %s FROM t",  # a jsonb operator, not a variable
    "LOCK TABLE t IN SHARE MODE",  # PostgreSQL's ends with the transaction
    "SELECT GET_LOCK('a', 1)",  # not a PostgreSQL function: MySQL's rules are not applied
]


@pytest.mark.parametrize(("sql", "rule", "what"), MYSQL_PINS)
def test_mysql_statement_that_pins(sql: str, rule: str, what: str) -> None:
    assert pins.suspect(sql)
    found = pins.classify(sql, "mysql")
    assert found is not None
    assert (found[0].name, found[1]) == (rule, what)


@pytest.mark.parametrize("sql", MYSQL_SAFE)
def test_mysql_statement_that_does_not_pin(sql: str) -> None:
    assert pins.classify(sql, "mysql") is None


@pytest.mark.parametrize(("sql", "rule", "what"), POSTGRESQL_PINS)
def test_postgresql_statement_that_pins(sql: str, rule: str, what: str) -> None:
    assert pins.suspect(sql)
    found = pins.classify(sql, "postgresql")
    assert found is not None
    assert (found[0].name, found[1]) == (rule, what)
    assert pins.PGBOUNCER in found[0].breaks


@pytest.mark.parametrize("sql", POSTGRESQL_SAFE)
def test_postgresql_statement_that_does_not_pin(sql: str) -> None:
    assert pins.classify(sql, "postgresql") is None


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT id, name FROM app_item WHERE id = %s",
        'SELECT "app_item"."id" FROM "app_item" ORDER BY "app_item"."name" ASC LIMIT 21',
        "INSERT INTO app_item (name) VALUES (%s) RETURNING id",
        "UPDATE app_item SET name = %s WHERE id = %s",
        "DELETE FROM app_item WHERE id IN (%s, %s)",
        "BEGIN",
        "COMMIT",
    ],
)
def test_ordinary_statements_fail_the_cheap_test(sql: str) -> None:
    assert not pins.suspect(sql)


def test_every_pin_passes_the_cheap_test_first() -> None:
    for sql, _, _ in MYSQL_PINS + POSTGRESQL_PINS:
        assert pins.suspect(sql), sql


def test_a_statement_without_a_server_pins_nothing() -> None:
    assert pins.classify("SELECT GET_LOCK('a', 1)", "sqlite") is None


def test_each_rule_breaks_a_multiplexer_of_its_vendor_and_says_the_fix() -> None:
    for rule in pins.RULES:
        assert rule.breaks <= set(pins.MULTIPLEXERS)
        assert rule.fix and not rule.fix.endswith(".")
    families = set().union(*pins.FAMILIES.values())
    assert families == set(pins.MULTIPLEXERS)
