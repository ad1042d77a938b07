"""The audit's one look at the server, for every face: the server's facts and the account's
connections on one connection, or the finding that says why the server could not be asked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pa_dbhealth.core import vendors
from pa_dbhealth.core.audit import Audit, Terms, connect_failure
from pa_dbhealth.core.errors import Kind, classify
from pa_dbhealth.core.look import LookTimedOut
from pa_dbhealth.core.vendors import AccountSnapshot, ServerFacts


def facts_and_snapshot(raw: Any) -> tuple[ServerFacts, AccountSnapshot]:
    """The question the audit asks on its DB-API connection (two round trips)."""
    return vendors.server_facts(raw), vendors.account_snapshot(raw)


@dataclass(frozen=True)
class Asked:
    """What the look found: both, or neither with the reason the limits are not known."""

    facts: ServerFacts | None
    snapshot: AccountSnapshot | None
    reason: str


def ask_server(
    report: Audit,
    who: str,
    address: str,
    terms: Terms,
    look: Callable[[Callable[[Any], tuple[ServerFacts, AccountSnapshot]]], Any],
    errors: tuple[type[BaseException], ...],
) -> Asked | None:
    """``look(facts_and_snapshot)``. None when the server could not be asked (no answer in
    time, refused, unreachable): the finding saying so is on ``report``, and what the settings
    would mean for a server not seen can wait. A server that answers but may not show its
    limits gives an ``Asked`` without figures and the reason."""
    try:
        facts, snapshot = look(facts_and_snapshot)
    except LookTimedOut as exc:
        report.findings.append(connect_failure(who, address, exc, terms))
        return None
    except errors as exc:
        found = classify(exc)
        if found.kind is not Kind.OTHER:
            report.findings.append(connect_failure(who, address, exc, terms))
            return None
        return Asked(None, None, f"no permission to read its limits: {found.short}")
    return Asked(facts, snapshot, "")
