"""What in a statement pins a connection to one client behind a multiplexer.

A multiplexer (ProxySQL, MySQL Router's connection sharing, MaxScale's session pooling,
PgBouncer in transaction mode) lends a few server connections to many clients, between
statements or transactions. A statement that leaves state on the server's session (a user
lock, a user variable, a session variable it does not track, a temporary table, a prepared
statement, a ``LISTEN``, a cursor that outlives its transaction) either pins the server
connection to that client for good (ProxySQL, MySQL Router, MaxScale) or is simply not
supported (PgBouncer in transaction mode: the next transaction may run on another server
connection). :func:`classify` names the rule a statement breaks, or None.

:func:`suspect` is the cheap test every query pays; only a suspect statement is parsed.
"""

from __future__ import annotations

import re

from pa_dbhealth.core.pin_rules import (
    ADVISORY_LOCK,
    FAMILIES,
    FOUND_ROWS,
    GET_LOCK,
    LISTEN,
    LOCK_TABLES,
    MULTIPLEXERS,
    NAMES,
    PGBOUNCER,
    PREPARE,
    RULES,
    TEMPORARY_TABLE,
    UNTRACKED_SET,
    USER_VARIABLE,
    WITH_HOLD,
    Rule,
)
from pa_dbhealth.core.pin_rules import MYSQL_TRACKED as _MYSQL_TRACKED
from pa_dbhealth.core.pin_rules import PG_TRACKED as _PG_TRACKED

__all__ = ["FAMILIES", "MULTIPLEXERS", "NAMES", "PGBOUNCER", "RULES", "Rule", "classify", "suspect"]

_STARTS = frozenset(("set", "res", "loc", "pre", "dea", "lis", "cre", "dec"))
_ORDINARY = ("SELECT", "INSERT", "UPDATE", "DELETE", "select", "insert", "update", "delete")
_STRING = re.compile(r"'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.)*\"", re.DOTALL)
_COMMENT = {
    "mysql": re.compile(r"/\*.*?\*/|--[^\n]*|#[^\n]*", re.DOTALL),
    "postgresql": re.compile(r"/\*.*?\*/|--[^\n]*", re.DOTALL),
}
_USER_VARIABLE = re.compile(r"(?<![@\w])@(?:\w|`|'|\")")
_SET_NAME = re.compile(
    r"\s*(?:(global|session|local|persist|persist_only)\s+|@@(?:(global|session|local)\.)?)?"
    r"(@?[\w.`\"]+(?:\s+(?:set|zone))?)",
    re.IGNORECASE,
)


def suspect(sql: str) -> bool:
    """Whether the statement might pin (then :func:`classify` says): C-level string tests,
    about 2 200 machine instructions for an ordinary 250-character ``SELECT`` (a query
    through Django costs some 135 000). The words inside a statement are looked for in lower
    or upper case, and only where a rarer letter they contain (``k``, ``q``) is present."""
    return (
        (not sql.startswith(_ORDINARY) and sql.lstrip()[:3].lower() in _STARTS)
        or "@" in sql
        # GET_LOCK, pg_advisory_lock; SQL_CALC_FOUND_ROWS
        or (("k" in sql or "K" in sql) and ("lock" in sql or "LOCK" in sql))
        or (("q" in sql or "Q" in sql) and ("calc" in sql or "CALC" in sql))
    )


def classify(sql: str, vendor: str) -> tuple[Rule, str] | None:
    """The rule ``sql`` breaks on a ``vendor`` ("mysql" or "postgresql") server and what
    in it does (``"SET foreign_key_checks"``), or None."""
    if vendor not in ("mysql", "postgresql"):
        return None
    text = _STRING.sub("''", _COMMENT[vendor].sub(" ", sql))
    judge = _classify_mysql if vendor == "mysql" else _classify_postgresql
    for statement in text.split(";"):
        lowered = " ".join(statement.lower().split())
        found = judge(lowered, lowered.split(" ", 1)[0])
        if found is not None:
            return found
    return None


def _classify_mysql(sql: str, first: str) -> tuple[Rule, str] | None:
    if first == "set":
        return _untracked_set(sql[4:], _MYSQL_TRACKED, mysql=True)
    if first == "lock" and re.match(r"lock tables? ", sql):
        return LOCK_TABLES, "LOCK TABLES"
    if first in ("prepare", "deallocate"):
        return PREPARE, first.upper()
    if re.match(r"create (?:or replace )?temporary table", sql):
        return TEMPORARY_TABLE, "CREATE TEMPORARY TABLE"
    if re.search(r"\bget_lock\s*\(", sql):
        return GET_LOCK, "GET_LOCK"
    if "sql_calc_found_rows" in sql:
        return FOUND_ROWS, "SQL_CALC_FOUND_ROWS"
    if _USER_VARIABLE.search(sql):
        return USER_VARIABLE, "@ user variable"
    return None


def _classify_postgresql(sql: str, first: str) -> tuple[Rule, str] | None:
    if first == "set":
        return _untracked_set(sql[4:], _PG_TRACKED, mysql=False)
    if first == "reset":
        name = sql[6:].strip().rstrip(";")
        return None if name in _PG_TRACKED else (UNTRACKED_SET, f"RESET {name}")
    if first in ("prepare", "deallocate"):
        return PREPARE, first.upper()
    if first == "listen":
        return LISTEN, "LISTEN"
    if re.match(r"create (?:(?:global|local) )?temp(?:orary)? table", sql):
        if re.search(r"on commit drop", sql):
            return None
        return TEMPORARY_TABLE, "CREATE TEMPORARY TABLE"
    if first == "declare" and re.search(r"\bwith hold\b", sql):
        return WITH_HOLD, "DECLARE ... WITH HOLD"
    if re.search(r"\bpg_(?:try_)?advisory_lock(?:_shared)?\s*\(", sql):
        return ADVISORY_LOCK, "pg_advisory_lock"
    return None


def _untracked_set(rest: str, tracked: frozenset[str], *, mysql: bool) -> tuple[Rule, str] | None:
    """The first session variable a ``SET`` (``rest``: after the word) changes that the
    multiplexers do not track, or None."""
    for part in _assignments(rest, mysql=mysql):
        match = _SET_NAME.match(part)
        if match is None:
            continue
        scope = (match.group(1) or match.group(2) or "").lower()
        name = match.group(3).strip('`"').lower()
        if scope == "global" or (scope == "local" and not mysql):
            continue  # not this session's state (SET LOCAL: this transaction's)
        if mysql and name.startswith("@"):
            return USER_VARIABLE, "SET @"
        if name.split(" ")[0] in ("transaction", "character") or name in tracked:
            continue
        return UNTRACKED_SET, f"SET {name}"
    return None


def _assignments(rest: str, *, mysql: bool) -> list[str]:
    """A MySQL ``SET a = 1, b = 2`` as its assignments (PostgreSQL sets one at a time)."""
    if not mysql:
        return [rest]
    return re.split(r",(?![^(]*\))", rest)
