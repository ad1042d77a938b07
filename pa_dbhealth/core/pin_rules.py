"""The rules of what pins a connection behind each multiplexer, and their fixes
(:mod:`pa_dbhealth.core.pins` applies them)."""

from __future__ import annotations

from dataclasses import dataclass

PROXYSQL = "proxysql"
MYSQL_ROUTER = "mysql-router"
MAXSCALE = "maxscale"
PGBOUNCER = "pgbouncer"
MULTIPLEXERS = (PROXYSQL, MYSQL_ROUTER, MAXSCALE, PGBOUNCER)
NAMES = {
    PROXYSQL: "ProxySQL",
    MYSQL_ROUTER: "MySQL Router",
    MAXSCALE: "MaxScale",
    PGBOUNCER: "PgBouncer (transaction mode)",
}
_MYSQL_ALL = frozenset({PROXYSQL, MYSQL_ROUTER, MAXSCALE})


@dataclass(frozen=True)
class Rule:
    """One way to pin: its name, the multiplexers it breaks and the fix."""

    name: str
    breaks: frozenset[str]
    fix: str


GET_LOCK = Rule(
    "GET_LOCK",
    _MYSQL_ALL,
    "use a transaction-scoped lock instead: SELECT ... FOR UPDATE on a lock row inside "
    "transaction.atomic() (SQLAlchemy: with_for_update() inside a transaction)",
)
USER_VARIABLE = Rule(
    "@ user variable",
    frozenset({PROXYSQL, MYSQL_ROUTER}),
    "compute the value in Python or inside one statement (a subquery or window function) "
    "instead of keeping it in an @variable between statements",
)
UNTRACKED_SET = Rule(
    "SET",
    frozenset({PROXYSQL, PGBOUNCER}),
    "set it for the account or database on the server (ALTER USER/ALTER ROLE ... SET, or "
    "the proxy's own variables), or use SET LOCAL inside a transaction (PostgreSQL)",
)
TEMPORARY_TABLE = Rule(
    "CREATE TEMPORARY TABLE",
    _MYSQL_ALL | {PGBOUNCER},
    "use a subquery, a CTE or a real table keyed by a job id; on PostgreSQL, create it "
    "inside a transaction with ON COMMIT DROP",
)
FOUND_ROWS = Rule(
    "SQL_CALC_FOUND_ROWS",
    frozenset({PROXYSQL, MYSQL_ROUTER}),
    "run a separate SELECT COUNT(*) (Django's Paginator and QuerySet.count() do)",
)
LOCK_TABLES = Rule(
    "LOCK TABLES",
    _MYSQL_ALL,
    "use SELECT ... FOR UPDATE inside a transaction: the lock ends with it",
)
PREPARE = Rule(
    "PREPARE",
    _MYSQL_ALL | {PGBOUNCER},
    "let the driver bind parameters (cursor.execute(sql, params)) instead of SQL "
    "PREPARE/EXECUTE/DEALLOCATE",
)
LISTEN = Rule(
    "LISTEN",
    frozenset({PGBOUNCER}),
    "listen on a direct connection to the server (a separate DATABASES alias or engine that "
    "bypasses the pooler), not through PgBouncer",
)
ADVISORY_LOCK = Rule(
    "session advisory lock",
    frozenset({PGBOUNCER}),
    "use pg_advisory_xact_lock() (or pg_try_advisory_xact_lock()) inside a transaction: "
    "the lock ends with it",
)
WITH_HOLD = Rule(
    "WITH HOLD cursor",
    frozenset({PGBOUNCER}),
    "read the rows inside one transaction (a cursor without WITH HOLD), or page with "
    "LIMIT/keyset queries",
)

RULES = (
    GET_LOCK,
    USER_VARIABLE,
    UNTRACKED_SET,
    TEMPORARY_TABLE,
    FOUND_ROWS,
    LOCK_TABLES,
    PREPARE,
    LISTEN,
    ADVISORY_LOCK,
    WITH_HOLD,
)
# Which multiplexers serve which vendor's servers.
FAMILIES = {"mysql": _MYSQL_ALL, "postgresql": frozenset({PGBOUNCER})}

# Session state the multiplexers track and restore (Django's own SETs among them).
MYSQL_TRACKED = frozenset(
    {
        "sql_mode",
        "time_zone",
        "sql_auto_is_null",
        "autocommit",
        "names",
        "character set",
        "charset",
        "character_set_client",
        "character_set_connection",
        "character_set_results",
        "collation_connection",
        "transaction",
        "tx_isolation",
        "transaction_isolation",
        "tx_read_only",
        "transaction_read_only",
    }
)
PG_TRACKED = frozenset(
    {
        "time zone",
        "timezone",
        "client_encoding",
        "names",
        "datestyle",
        "standard_conforming_strings",
        "application_name",
        "transaction",  # SET TRANSACTION: this transaction only
        "constraints",  # SET CONSTRAINTS: this transaction only
    }
)
