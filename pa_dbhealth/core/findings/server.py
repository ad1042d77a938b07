"""Findings about the server itself: whether it answers, whether it was asked, whether the
database entry can reach it, and whether its version suits the Django that talks to it.
"""

from __future__ import annotations

from pa_dbhealth.core.findings.base import Finding, Level


def unreachable(who: str, address: str, error: str, fix: str) -> Finding:
    return Finding(
        "pa_dbhealth.E011",
        Level.ERROR,
        f"Cannot reach the database server of {who} at {address}: {error}",
        fix,
    )


def cannot_connect(who: str, error: str, fix: str) -> Finding:
    return Finding("pa_dbhealth.E018", Level.ERROR, f"Cannot connect to {who}: {error}", fix)


def server_not_asked(who: str, reason: str, timeout: int, cap: int, fix: str) -> Finding:
    return Finding(
        "pa_dbhealth.I015",
        Level.INFO,
        f"The server of {who} was not asked ({reason}): the audit assumes an idle timeout "
        f"of {timeout} s and a cap of {cap} connections.",
        fix,
    )


def not_applicable(who: str, note: str) -> Finding:
    return Finding("pa_dbhealth.I017", Level.INFO, f"{who}: {note}", "Nothing to do.")


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
