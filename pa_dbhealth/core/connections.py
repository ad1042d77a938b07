"""What ``dbconnections`` does on one database, for every face: list the account's
connections, optionally kill its idle ones, and wait while the cap is full.

A face gives a ``look`` (open a connection for one question, close it again) and prints
what comes back with ``core.render``; the Django command keeps its own copy of these steps.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from pa_dbhealth.core import render, vendors
from pa_dbhealth.core.commands import CommandFailed
from pa_dbhealth.core.errors import Classified, Kind, classify
from pa_dbhealth.core.look import LookTimedOut
from pa_dbhealth.core.retry import connect_with_retry

T = TypeVar("T")

WAY_OUT = (
    "Free a connection and run this again. On PythonAnywhere: reload the web app (Web tab, "
    "Reload) to close the web workers' connections, or stop the scheduled or always-on task "
    "that holds them (Tasks tab). The server also drops connections idle for longer than "
    "its wait_timeout (300 s on PythonAnywhere)."
)


class GaveUp(Exception):
    """The cap stayed full for the whole budget: the message says how to free a connection."""


def question(
    vendor: str, kill_idle: float | None, include_transactions: bool, dry_run: bool
) -> Callable[[Any], dict[str, Any]]:
    """The question a look asks: the listing, plus ``killed``/``spared`` or ``would_kill``."""

    def ask(raw: Any) -> dict[str, Any]:
        snapshot = vendors.account_snapshot(raw)
        result = render.listing(vendor, snapshot)
        if kill_idle is None:
            return result
        candidates = [
            c.id
            for c in snapshot.connections
            if c.idle and not c.this_connection and c.idle_seconds >= kill_idle
        ]
        if dry_run:
            result["would_kill"] = candidates
        else:
            killed = vendors.kill_idle(
                raw, candidates, min_idle=kill_idle, include_transactions=include_transactions
            )
            result.update(killed.as_dict())
        return result

    return ask


def with_wait(look: Callable[[], T], *, budget: float, cap: int, say: Callable[[str], None]) -> T:
    """``look()``, tried again for up to ``budget`` seconds while the cap refuses its
    connection, saying so through ``say`` (once, then at most once a second); raises
    :class:`GaveUp` when the budget runs out, and any other error as it comes."""
    start = time.monotonic()
    said: float | None = None

    def on_retry(classified: Classified, attempt: int, delay: float) -> None:
        nonlocal said
        now = time.monotonic()
        if said is None:
            say(
                f"waiting: the account is at its cap of {cap} connections "
                f"({classified.code}); retrying for up to {budget:g} s"
            )
        elif now - said < 1.0:
            return
        else:
            say(f"still waiting ({now - start:.0f} s of {budget:g} s)")
        said = now

    try:
        return connect_with_retry(look, budget=budget, on_retry=on_retry)
    except Exception as exc:
        classified = classify(exc)
        if not classified.kind.is_cap:
            raise
        raise GaveUp(
            f"gave up after {time.monotonic() - start:.1f} s: every connection the "
            f"account may hold is in use ({classified.short}), so this command cannot "
            f"open one to look. {WAY_OUT}"
        ) from exc


def listing(
    name: str,
    vendor: str,
    look: Callable[[Callable[[Any], dict[str, Any]]], dict[str, Any]],
    *,
    kill_idle: float | None,
    include_transactions: bool,
    dry_run: bool,
    budget: float,
    cap: int,
    say: Callable[[str], None],
    errors: tuple[type[BaseException], ...],
    address: str,
) -> dict[str, Any]:
    """One database's listing (and kills) through ``look(question)``, waiting while the cap
    is full; what stops it is a :class:`CommandFailed` with code 2 naming ``name`` (and
    ``address`` when no server answers there)."""
    if not vendors.is_applicable(vendor):
        note = vendors.not_applicable(vendor, vendor).note
        return {"applicable": False, "note": note, "limit": None, "connections": []}
    ask = question(vendor, kill_idle, include_transactions, dry_run)
    try:
        return with_wait(lambda: look(ask), budget=budget, cap=cap, say=say)
    except LookTimedOut as exc:
        raise CommandFailed(f"database {name!r}: {exc}", 2) from exc
    except GaveUp as exc:
        raise CommandFailed(str(exc), 2) from exc
    except errors as exc:
        found = classify(exc)
        where = f" at {address}" if found.kind is Kind.UNREACHABLE else ""
        raise CommandFailed(f"database {name!r}{where}: {found.short}", 2) from exc
