"""Findings about how many connections the site can open against the account's cap."""

from __future__ import annotations

from pa_dbhealth.core.findings.base import Finding, Level, cap_error


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


def workers_unknown(who: str, cap: int, fix: str) -> Finding:
    return Finding(
        "pa_dbhealth.I019",
        Level.INFO,
        f"The number of concurrent web workers is unknown, so the connection budget of "
        f"{who} (cap {cap}) cannot be checked.",
        fix,
    )
