"""The catalogue of findings: one function per id, shared by ``dbcheck`` and the system checks.

Ids are public API: never reuse a retired one. Messages carry the actual figures; hints
say what to set. E001-E003 (a malformed ``PA_DBHEALTH``) live in ``checks.py``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from django.core import checks

MIDDLEWARE_PATH = "pa_dbhealth.middleware.ConnectionHygieneMiddleware"


class Level(enum.IntEnum):
    INFO = checks.INFO
    WARNING = checks.WARNING
    ERROR = checks.ERROR

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Finding:
    id: str
    level: Level
    message: str
    hint: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "level": self.level.label,
            "message": self.message,
            "hint": self.hint,
        }

    def as_check_message(self) -> checks.CheckMessage:
        return checks.CheckMessage(self.level, self.message, hint=self.hint, id=self.id)


def _id(number: int, level: Level) -> str:
    return f"pa_dbhealth.{level.name[0]}{number:03d}"


def _f(number: int, level: Level, message: str, hint: str) -> Finding:
    return Finding(_id(number, level), level, message, hint)


# The errors users meet, in each vendor's words (no MySQL error for a PostgreSQL alias).
_LOST = {
    "mysql": "(2006, 'Server has gone away')",
    "postgresql": "'terminating connection due to idle-session timeout'",
}
_CAP = {
    "mysql": "(1226, 'max_user_connections')",
    "postgresql": "'too many connections for role'",
}
_WAIT_HINT = {
    "mysql": " ENGINE 'pa_dbhealth.backends.mysql' makes short bursts wait instead of failing.",
}


def _lost(vendor: str) -> str:
    return _LOST.get(vendor, "a lost-connection error")


def _cap(vendor: str) -> str:
    return _CAP.get(vendor, "a too-many-connections error")


def conn_max_age_too_long(alias: str, age: int, timeout: int, limit: float, vendor: str) -> Finding:
    return _f(
        4,
        Level.ERROR,
        f"DATABASES[{alias!r}]['CONN_MAX_AGE'] = {age} but the server closes connections "
        f"idle for {timeout} s: a connection kept past {timeout} s fails with "
        f"{_lost(vendor)}.",
        f"Set DATABASES[{alias!r}]['CONN_MAX_AGE'] = {int(limit)} or less (the server's "
        f"{timeout} s minus TIMEOUT_MARGIN), or 0 to close connections after each request.",
    )


def conn_max_age_unlimited(alias: str, timeout: int | None, vendor: str) -> Finding:
    timeout_text = f"after {timeout} s" if timeout else "when they have been idle too long"
    return _f(
        5,
        Level.ERROR,
        f"DATABASES[{alias!r}]['CONN_MAX_AGE'] = None keeps connections forever, but the server "
        f"closes idle ones {timeout_text}: the next query then fails with {_lost(vendor)}.",
        f"Set DATABASES[{alias!r}]['CONN_MAX_AGE'] to 0, or to a number of seconds below the "
        "server's idle timeout minus TIMEOUT_MARGIN.",
    )


def no_health_checks(alias: str, age: int | None) -> Finding:
    shown = "None" if age is None else str(age)
    return _f(
        6,
        Level.WARNING,
        f"DATABASES[{alias!r}] keeps connections (CONN_MAX_AGE = {shown}) without "
        "CONN_HEALTH_CHECKS: a connection the server dropped is reused without a test.",
        f"Set DATABASES[{alias!r}]['CONN_HEALTH_CHECKS'] = True (Django 4.1+).",
    )


def budget_over_cap(
    alias: str, need: int, breakdown: str, cap: int, allowed: int, vendor: str
) -> Finding:
    return _f(
        7,
        Level.ERROR,
        f"The account behind {alias!r} may hold {cap} connections, but the site can open "
        f"{need} at once ({breakdown}): the excess gets {_cap(vendor)}.",
        f"Run at most {allowed} concurrent web worker(s) (processes x threads), or fewer "
        "aliases or TASK_CONNECTIONS on this account; set PA_DBHEALTH['WORKERS'] to what you "
        f"run.{_WAIT_HINT.get(vendor, '')}",
    )


def budget_at_cap(alias: str, need: int, breakdown: str, cap: int, vendor: str) -> Finding:
    return _f(
        8,
        Level.WARNING,
        f"The site can open {need} connections at once ({breakdown}), exactly the {cap} the "
        f"account behind {alias!r} may hold: one console or leaked connection makes it fail "
        f"with {_cap(vendor)}.",
        "Leave one connection free: run one worker fewer, or keep consoles and scheduled tasks "
        f"off while the site is busy.{_WAIT_HINT.get(vendor, '')}",
    )


def pool_too_big(alias: str, kind: str, size: int, overflow: int, cap: int, fix: str) -> Finding:
    return _f(
        9,
        Level.ERROR,
        f"DATABASES[{alias!r}] uses {kind} with up to {size + overflow} connections "
        f"(size {size} + overflow {overflow}) but the account may hold {cap}.",
        fix,
    )


def pool_recycle_too_long(
    alias: str, kind: str, recycle: float, timeout: int, fix: str, vendor: str
) -> Finding:
    return _f(
        10,
        Level.ERROR,
        f"DATABASES[{alias!r}] uses {kind} which keeps connections for {recycle:g} s, but the "
        f"server closes connections idle for {timeout} s: pooled connections die with "
        f"{_lost(vendor)}.",
        fix,
    )


def unreachable(alias: str, address: str, error: str) -> Finding:
    return _f(
        11,
        Level.ERROR,
        f"Cannot reach the database server of {alias!r} at {address}: {error}",
        "Check HOST and PORT in DATABASES and that the server runs; on PythonAnywhere the host "
        "is <username>.mysql.pythonanywhere-services.com.",
    )


def net_read_timeout(alias: str, seconds: int) -> Finding:
    return _f(
        12,
        Level.INFO,
        f"The server of {alias!r} has net_read_timeout = {seconds} s: a query returning a huge "
        "result can fail with (2013, 'Lost connection to MySQL server during query').",
        "Fetch large results in pages (QuerySet slicing, .iterator(chunk_size=...)) and limit "
        "what a query returns.",
    )


def middleware_missing() -> Finding:
    return _f(
        13,
        Level.INFO,
        f"{MIDDLEWARE_PATH} is not in MIDDLEWARE: stale connections are not closed before a "
        "request uses them and a full connection cap answers 500 instead of 503.",
        f"Add {MIDDLEWARE_PATH!r} near the top of MIDDLEWARE.",
    )


def idle_past_timeout(alias: str, conn_id: int, host: str, idle: int, timeout: int) -> Finding:
    return _f(
        14,
        Level.WARNING,
        f"Connection {conn_id} of the account behind {alias!r} (from {host}) has been idle for "
        f"{idle} s, longer than the server's {timeout} s timeout: it holds one of the "
        "account's connections for nothing.",
        f"Find its owner (a console, a script that set its own wait_timeout) and close it, or "
        f"run `manage.py dbconnections --database {alias} --kill-idle {timeout}`.",
    )


def server_not_asked(alias: str, reason: str, timeout: int, cap: int) -> Finding:
    return _f(
        15,
        Level.INFO,
        f"The server of {alias!r} was not asked ({reason}): the audit assumes an idle timeout "
        f"of {timeout} s and a cap of {cap} connections from PA_DBHEALTH.",
        "Set PA_DBHEALTH['SERVER_IDLE_TIMEOUT'] and ['CONNECTION_LIMIT'] to your host's figures, "
        "or run dbcheck without --offline where the server can be reached.",
    )


def margin_clamped(margin: int, timeout: int, limit: float) -> Finding:
    return _f(
        16,
        Level.WARNING,
        f"PA_DBHEALTH['TIMEOUT_MARGIN'] = {margin} is not smaller than the server's idle timeout "
        f"of {timeout} s: connections count as stale after {limit:g} s (half the timeout) instead.",
        f"Set PA_DBHEALTH['TIMEOUT_MARGIN'] below {timeout}, e.g. {max(timeout // 10, 1)}.",
    )


def not_applicable(alias: str, note: str) -> Finding:
    return _f(17, Level.INFO, f"{alias!r}: {note}", "Nothing to do.")


def cannot_connect(alias: str, error: str, hint: str) -> Finding:
    return _f(18, Level.ERROR, f"Cannot connect to {alias!r}: {error}", hint)


def workers_unknown(alias: str, cap: int) -> Finding:
    return _f(
        19,
        Level.INFO,
        f"The number of concurrent web workers is unknown, so the connection budget of "
        f"{alias!r} (cap {cap}) cannot be checked.",
        "Set PA_DBHEALTH['WORKERS'] to processes x threads of your web server (it is detected "
        "automatically under uWSGI).",
    )


def idle_in_transaction_unlimited(alias: str) -> Finding:
    return _f(
        20,
        Level.INFO,
        f"The server of {alias!r} has no idle_in_transaction_session_timeout: a session left "
        "idle inside a transaction holds its connection (and its locks) forever.",
        "ALTER ROLE <you> SET idle_in_transaction_session_timeout = '5min'.",
    )
