"""The catalogue of findings: one function per id, shared by every face.

Ids are public API: never reuse a retired one. Each id is written out literally where its
finding is built, so a grep finds it. The catalogue states the problem with the real
figures; where the fix depends on the face (Django's ``CONN_MAX_AGE`` or SQLAlchemy's
``pool_recycle``), the face names its own setting and words the fix (``setting``, ``fix``).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pa_dbhealth.core.options import Problem


class Level(enum.IntEnum):
    """The same numbers as Django's check levels, so a face can pass them on as they are."""

    INFO = 20
    WARNING = 30
    ERROR = 40

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


# The errors users meet, in each vendor's words (no MySQL error for a PostgreSQL server).
_LOST = {
    "mysql": "(2006, 'MySQL server has gone away')",
    "postgresql": "'terminating connection due to idle-session timeout'",
}
_CAP = {
    "mysql": "(1226, 'max_user_connections')",
    "postgresql": "'too many connections for role'",
}


def lost_error(vendor: str) -> str:
    return _LOST.get(vendor, "a lost-connection error")


def cap_error(vendor: str) -> str:
    return _CAP.get(vendor, "a too-many-connections error")


# --- the settings of pa_dbhealth itself ---------------------------------------------------


def settings_not_a_mapping(message: str, hint: str) -> Finding:
    return Finding("pa_dbhealth.E001", Level.ERROR, message, hint)


def settings_unknown_key(message: str, hint: str) -> Finding:
    return Finding("pa_dbhealth.E002", Level.ERROR, message, hint)


def settings_bad_value(message: str, hint: str) -> Finding:
    return Finding("pa_dbhealth.E003", Level.ERROR, message, hint)


def settings_weak_value(message: str, hint: str) -> Finding:
    """A value that works but should not be kept: a HEALTH_TOKEN anyone could guess."""
    return Finding("pa_dbhealth.W029", Level.WARNING, message, hint)


_SETTINGS_FINDINGS = {
    "type": settings_not_a_mapping,
    "unknown": settings_unknown_key,
    "value": settings_bad_value,
    "weak": settings_weak_value,
}


def settings_findings(problems: Iterable[Problem]) -> list[Finding]:
    """E001 (not a dict), E002 (an unknown key), E003 (a bad value), W029 (a weak value):
    one per problem of ``core.options.problems``."""
    return [_SETTINGS_FINDINGS[p.kind](p.message, p.hint) for p in problems]


# --- how long connections are kept ---------------------------------------------------------


def kept_past_timeout(setting: str, value: str, timeout: int, vendor: str, fix: str) -> Finding:
    return Finding(
        "pa_dbhealth.E004",
        Level.ERROR,
        f"{setting} = {value} but the server closes connections idle for {timeout} s: a "
        f"connection kept past {timeout} s fails with {lost_error(vendor)}.",
        fix,
    )


def kept_forever(setting: str, value: str, timeout: int | None, vendor: str, fix: str) -> Finding:
    when = f"after {timeout} s" if timeout else "when they have been idle too long"
    return Finding(
        "pa_dbhealth.E005",
        Level.ERROR,
        f"{setting} = {value} keeps connections forever, but the server closes idle ones "
        f"{when}: the next query then fails with {lost_error(vendor)}.",
        fix,
    )


def kept_untested(subject: str, fix: str) -> Finding:
    return Finding(
        "pa_dbhealth.W006",
        Level.WARNING,
        f"{subject}: a connection the server dropped is reused without a test.",
        fix,
    )


# --- how many connections the site can open ------------------------------------------------


def budget_over_cap(
    who: str, need: int, breakdown: str, cap: int, fix: str, vendor: str
) -> Finding:
    return Finding(
        "pa_dbhealth.E007",
        Level.ERROR,
        f"The account behind {who} may hold {cap} connections, but the site can open "
        f"{need} at once ({breakdown}): the excess gets {cap_error(vendor)}.",
        fix,
    )


def budget_queues(who: str, need: int, breakdown: str, cap: int, fix: str) -> Finding:
    # The excess waits in line: with ``need`` requests each holding a connection for a
    # while, ``cap`` are served at a time, so the queue's mean wait is (need - cap) / cap holds.
    return Finding(
        "pa_dbhealth.W022",
        Level.WARNING,
        f"The site can open {need} connections at once ({breakdown}) on the {cap} the "
        f"account behind {who} may hold. They are held only while used and the excess waits "
        f"in pa_dbhealth's line instead of failing: at full load a request waits for its "
        f"connection about {(need - cap) / cap:.1f} times as long as a request holds one, and "
        "gets a 503 only past CONNECT_RETRY.",
        fix,
    )


def budget_at_cap(who: str, need: int, breakdown: str, cap: int, fix: str, vendor: str) -> Finding:
    return Finding(
        "pa_dbhealth.W008",
        Level.WARNING,
        f"The site can open {need} connections at once ({breakdown}), exactly the {cap} the "
        f"account behind {who} may hold: one console or leaked connection makes it fail "
        f"with {cap_error(vendor)}.",
        fix,
    )


def pool_too_big(who: str, kind: str, size: int, overflow: int, cap: int, fix: str) -> Finding:
    # A size of 0 or a negative overflow is SQLAlchemy's QueuePool without a limit.
    most = (
        "no limit on connections per process"
        if size == 0 or overflow < 0
        else f"up to {size + overflow} connections per process"
    )
    return Finding(
        "pa_dbhealth.E009",
        Level.ERROR,
        f"{who} uses {kind} with {most} (size {size} + overflow {overflow}) but the account "
        f"may hold {cap}.",
        fix,
    )


def pool_recycle_too_long(
    who: str, kind: str, recycle: float, timeout: int, fix: str, vendor: str
) -> Finding:
    return Finding(
        "pa_dbhealth.E010",
        Level.ERROR,
        f"{who} uses {kind} which keeps connections for {recycle:g} s, but the server closes "
        f"connections idle for {timeout} s: pooled connections die with {lost_error(vendor)}.",
        fix,
    )


# --- what the server said -----------------------------------------------------------------


def unreachable(who: str, address: str, error: str, fix: str) -> Finding:
    return Finding(
        "pa_dbhealth.E011",
        Level.ERROR,
        f"Cannot reach the database server of {who} at {address}: {error}",
        fix,
    )


def net_read_timeout(who: str, seconds: int, fix: str) -> Finding:
    return Finding(
        "pa_dbhealth.I012",
        Level.INFO,
        f"The server of {who} has net_read_timeout = {seconds} s: a query returning a huge "
        "result can fail with (2013, 'Lost connection to MySQL server during query').",
        fix,
    )


def middleware_missing(path: str) -> Finding:
    return Finding(
        "pa_dbhealth.I013",
        Level.INFO,
        f"{path} is not in MIDDLEWARE: stale connections are not closed before a request "
        "uses them and a full connection cap answers 500 instead of 503.",
        f"Add {path!r} near the top of MIDDLEWARE.",
    )


def idle_past_timeout(
    who: str, conn_id: int, host: str, idle: int, timeout: int, fix: str
) -> Finding:
    return Finding(
        "pa_dbhealth.W014",
        Level.WARNING,
        f"Connection {conn_id} of the account behind {who} (from {host}) has been idle for "
        f"{idle} s, longer than the server's {timeout} s timeout: it holds one of the "
        "account's connections for nothing.",
        fix,
    )


def server_not_asked(who: str, reason: str, timeout: int, cap: int, fix: str) -> Finding:
    return Finding(
        "pa_dbhealth.I015",
        Level.INFO,
        f"The server of {who} was not asked ({reason}): the audit assumes an idle timeout "
        f"of {timeout} s and a cap of {cap} connections.",
        fix,
    )


def margin_clamped(setting: str, margin: float, timeout: int, limit: float) -> Finding:
    return Finding(
        "pa_dbhealth.W016",
        Level.WARNING,
        f"{setting} = {margin:g} is not smaller than the server's idle timeout of {timeout} s: "
        f"connections count as stale after {limit:g} s (half the timeout) instead.",
        f"Set {setting} below {timeout}, e.g. {max(timeout // 10, 1)}.",
    )


def not_applicable(who: str, note: str) -> Finding:
    return Finding("pa_dbhealth.I017", Level.INFO, f"{who}: {note}", "Nothing to do.")


def cannot_connect(who: str, error: str, fix: str) -> Finding:
    return Finding("pa_dbhealth.E018", Level.ERROR, f"Cannot connect to {who}: {error}", fix)


def workers_unknown(who: str, cap: int, fix: str) -> Finding:
    return Finding(
        "pa_dbhealth.I019",
        Level.INFO,
        f"The number of concurrent web workers is unknown, so the connection budget of "
        f"{who} (cap {cap}) cannot be checked.",
        fix,
    )


def idle_in_transaction_unlimited(who: str) -> Finding:
    return Finding(
        "pa_dbhealth.I020",
        Level.INFO,
        f"The server of {who} has no idle_in_transaction_session_timeout: a session left "
        "idle inside a transaction holds its connection (and its locks) forever.",
        "ALTER ROLE <you> SET idle_in_transaction_session_timeout = '5min'.",
    )


def kept_under_asgi(setting: str, value: str, evidence: str, fix: str) -> Finding:
    return Finding(
        "pa_dbhealth.W021",
        Level.WARNING,
        f"{setting} = {value}, but the site is served through ASGI ({evidence}): "
        "each ASGI request runs its database work in a thread made for that request, which "
        "ends with it, so a kept connection is never used again. It holds one of the "
        "account's connections until the garbage collector frees it, and a capped account "
        "soon refuses new ones (Django ticket #33497).",
        fix,
    )


def half_switched(subject: str, fix: str) -> Finding:
    return Finding(
        "pa_dbhealth.E025",
        Level.ERROR,
        f"{subject}: the entry is half switched to MySQL, and no connection can be opened with it.",
        fix,
    )


def connects_locally(subject: str, defaults: str, fix: str) -> Finding:
    return Finding(
        "pa_dbhealth.W026",
        Level.WARNING,
        f"{subject}: the MySQL client then uses {defaults}, which only suits a server on this "
        "machine.",
        fix,
    )


# --- the server's version against the Django that talks to it ------------------------------


def server_too_old(
    who: str, django: str, flavour: str, version: str, minimum: str, fix: str
) -> Finding:
    return Finding(
        "pa_dbhealth.E031",
        Level.ERROR,
        f"The server of {who} is {flavour} {version}, but {django} requires {flavour} "
        f"{minimum} or later: every connection fails with NotSupportedError.",
        fix,
    )


def server_too_old_next(
    who: str, django: str, flavour: str, version: str, minimum: str, fix: str
) -> Finding:
    return Finding(
        "pa_dbhealth.I033",
        Level.INFO,
        f"The server of {who} is {flavour} {version}; {django} will require {flavour} "
        f"{minimum} or later and refuse to connect to it.",
        fix,
    )


# --- behind a multiplexer (docs/outgrowing.md) ---------------------------------------------


def prepared_statements_unsupported(who: str, pooler: str, fix: str) -> Finding:
    return Finding(
        "pa_dbhealth.E034",
        Level.ERROR,
        f"{who} prepares statements on the server, but it connects through {pooler}, which "
        "hands each transaction to any of its server connections: a statement prepared on "
        "one is unknown on the next ('prepared statement ... does not exist').",
        fix,
    )


def pins_connections(site: str, what: str, count: int, breaks: str, fix: str) -> Finding:
    return Finding(
        "pa_dbhealth.W035",
        Level.WARNING,
        f"This app would pin {breaks} connections at {site} ({what}, {count} time(s) since "
        "its processes started): behind it, a server connection stays with one client "
        "(or, in PgBouncer's transaction mode, the next transaction runs on another).",
        f"{fix[:1].upper()}{fix[1:]}.",
    )


def behind_multiplexer(who: str, pooler: str, evidence: str, pool: str, kept: str) -> Finding:
    return Finding(
        "pa_dbhealth.I036",
        Level.INFO,
        f"{who} connects through {pooler} ({evidence}). {pool} The connections pa_dbhealth "
        f"counts, {kept} and pool sizes are client connections to the pooler; the socket "
        "check cannot see the server's idle kill, so keep connections fresh by age.",
        "Size the pooler's pool to the server's cap; see docs/outgrowing.md.",
    )


def server_side_cursors_behind_pooler(who: str, pooler: str, mode: str, fix: str) -> Finding:
    return Finding(
        "pa_dbhealth.W037",
        Level.WARNING,
        f"{who} uses server-side cursors (QuerySet.iterator()) but connects through {pooler} "
        f"{mode}: a cursor declared in one transaction is gone in the next "
        "('cursor ... does not exist').",
        fix,
    )


# --- the registry of holders -----------------------------------------------------------------


def registry_refused(where: str, why: str, setting: str, default: str | None) -> Finding:
    """The registry's directory ``where`` cannot be used (``why``). ``default``: the default
    place to suggest, None when ``where`` is it. Never advises changing a directory's mode:
    the refused one may be shared (/tmp)."""
    if default:
        fix = (
            f"Remove {setting} to use the default, {default}, or set it to another new "
            f"directory only this account uses"
        )
    else:
        fix = f"Set {setting} to a new directory only this account uses"
    return Finding(
        "pa_dbhealth.E028",
        Level.ERROR,
        f"The registry of holders is off: {why}. Every connection shows as not tracked, and "
        f"at a full cap nothing can say which process holds one.",
        f"{fix} (pa_dbhealth creates it, private, on first use). Leave the mode of {where} "
        f"as it is: other users or programs may need it.",
    )


def park_without_effect(reason: str, fix: str) -> Finding:
    return Finding(
        "pa_dbhealth.W039",
        Level.WARNING,
        f"PA_DBHEALTH['PARK'] = True, but {reason}: no connection is ever parked, and each "
        "request still pays a connect.",
        fix,
    )
