"""Findings about how long connections are kept against the server's idle timeouts."""

from __future__ import annotations

from pa_dbhealth.core.findings.base import Finding, Level, lost_error


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


def idle_in_transaction_unlimited(who: str) -> Finding:
    return Finding(
        "pa_dbhealth.I020",
        Level.INFO,
        f"The server of {who} has no idle_in_transaction_session_timeout: a session left "
        "idle inside a transaction holds its connection (and its locks) forever.",
        "ALTER ROLE <you> SET idle_in_transaction_session_timeout = '5min'.",
    )


def net_read_timeout(who: str, seconds: int, fix: str) -> Finding:
    return Finding(
        "pa_dbhealth.I012",
        Level.INFO,
        f"The server of {who} has net_read_timeout = {seconds} s: a query returning a huge "
        "result can fail with (2013, 'Lost connection to MySQL server during query').",
        fix,
    )
