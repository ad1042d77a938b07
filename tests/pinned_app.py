"""An app's code with seeded pins (each marked ``# pin: WHAT``) and statements that must
not count, for the audit of what pins a connection behind a multiplexer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.db import connection
from sqlalchemy import text


def line_of(marker: str) -> str:
    """``file:line`` of the line marked ``# pin: <marker>``."""
    lines = Path(__file__).read_text().splitlines()
    (number,) = [i for i, line in enumerate(lines, 1) if line.endswith(f"# pin: {marker}")]
    return f"{Path(__file__).resolve()}:{number}"


def w035_sites(findings: list[dict[str, Any]]) -> dict[str, str]:
    """W035's messages by the ``file:line`` they name."""
    found = {}
    for finding in findings:
        if finding["id"] == "pa_dbhealth.W035":
            site = finding["message"].split(" at ", 1)[1].split(" in ", 1)[0]
            found[site] = finding["message"] + " " + finding["hint"]
    return found


def lock_reports() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT GET_LOCK(%s, 1)", ["reports"])  # pin: GET_LOCK
        cursor.execute("SELECT RELEASE_LOCK(%s)", ["reports"])


def bulk_import() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET FOREIGN_KEY_CHECKS = 0")  # pin: SET foreign_key_checks
        cursor.execute("SET NAMES utf8mb4")  # tracked by every multiplexer: not a pin
        cursor.execute("SELECT SQL_CALC_FOUND_ROWS 1 LIMIT 1")  # pin: SQL_CALC_FOUND_ROWS
        cursor.execute("SET FOREIGN_KEY_CHECKS = 1")  # pin: SET foreign_key_checks back


def ordinary() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s, @@version", [1])
        cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")


def rank_rows(engine: Any) -> None:
    with engine.connect() as conn:
        conn.execute(text("SET @rank = 0"))  # pin: SET @
        conn.execute(text("CREATE TEMPORARY TABLE tmp_ids (id INT)"))  # pin: CREATE TEMPORARY
        conn.execute(text("DROP TEMPORARY TABLE tmp_ids"))
        conn.execute(text("SELECT :n"), {"n": 1})


def pg_session_state(alias: str) -> None:
    """What PgBouncer's transaction mode does not support, and what it does."""
    from django.db import connections, transaction

    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [4242])  # pin: pg_advisory_lock
        cursor.execute("SET statement_timeout = 5000")  # pin: SET statement_timeout
        cursor.execute("LISTEN pa_dbhealth_jobs")  # pin: LISTEN
        cursor.execute("DECLARE held CURSOR WITH HOLD FOR SELECT 1")  # pin: WITH HOLD
    with transaction.atomic(using=alias), connections[alias].cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [4243])
        cursor.execute("SET LOCAL statement_timeout = 5000")
