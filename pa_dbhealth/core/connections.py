"""What ``dbconnections`` does on one database, for every face: list the account's
connections, optionally kill its idle ones, and wait while the cap is full.

A face gives a ``look`` (open a connection for one question, close it again) and the
registry of holders of the database's server and account (``holders``); each row of the
server's list is joined with the process that holds it. While the cap is full the listing
cannot open its connection: the registry's view (no connection needed) is shown at once,
the look is retried for the budget, and when it gives up the registry's view stands in
for the server's (:class:`CapFull`). Every face prints the result with ``core.render``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from pa_dbhealth.core import render, render_holders, vendors
from pa_dbhealth.core.account_holders import AccountHolders
from pa_dbhealth.core.commands import CapFull, CommandFailed
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


Holders = Callable[["vendors.AccountSnapshot | None"], AccountHolders]


class GaveUp(Exception):
    """The cap stayed full for the whole budget: the message says how to free a connection."""


def question(
    kill_idle: float | None, include_transactions: bool, dry_run: bool
) -> Callable[[Any], tuple[vendors.AccountSnapshot, dict[str, Any]]]:
    """The question a look asks: the account's connections, plus ``killed``/``spared`` or
    ``would_kill``."""

    def ask(raw: Any) -> tuple[vendors.AccountSnapshot, dict[str, Any]]:
        snapshot = vendors.account_snapshot(raw)
        result: dict[str, Any] = {}
        if kill_idle is None:
            return snapshot, result
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
        return snapshot, result

    return ask


def with_wait(
    look: Callable[[], T],
    *,
    budget: float,
    cap: int,
    say: Callable[[str], None],
    refused: Callable[[Classified], object] = lambda classified: None,
) -> T:
    """``look()``, tried again for up to ``budget`` seconds while the cap refuses its
    connection, saying so through ``say`` (once, then at most once a second; ``refused``
    is called at the first refusal); raises :class:`GaveUp` when the budget runs out, and
    any other error as it comes."""
    start = time.monotonic()
    said: float | None = None

    def on_retry(classified: Classified, attempt: int, delay: float) -> None:
        nonlocal said
        now = time.monotonic()
        if said is None:
            refused(classified)
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
    display_name: str,
    look: Callable[[Callable[[Any], Any]], Any],
    *,
    kill_idle: float | None,
    include_transactions: bool,
    dry_run: bool,
    budget: float,
    cap: int,
    say: Callable[[str], None],
    errors: tuple[type[BaseException], ...],
    address: str,
    holders: Holders | None = None,
    show: Callable[[list[render.Line]], None] | None = None,
) -> dict[str, Any]:
    """One database's listing (and kills) through ``look(question)`` (``display_name``: what
    the vendor is called when it does not apply), waiting while the cap
    is full, each row with its ``holder`` when the face gives the registry (``holders``).
    At the cap's first refusal the registry's view goes to ``show`` (text output) at once;
    when the cap stays full, :class:`CapFull` carries it. Whatever else stops it is a
    :class:`CommandFailed` with code 2 naming ``name`` (and ``address`` when no server
    answers there)."""
    if not vendors.is_applicable(vendor):
        note = vendors.not_applicable(vendor, display_name).note
        return {"applicable": False, "note": note, "limit": None, "connections": []}
    ask = question(kill_idle, include_transactions, dry_run)
    views: list[dict[str, Any]] = []

    def registry_view(classified: Classified) -> None:
        if holders is None or views:
            return
        reason = (
            f"the account is at its cap of {cap} connections ({classified.code}), "
            "so the server cannot be asked"
        )
        held = holders(None)
        views.append(render_holders.registry_view(held.found, held.holders, reason))
        if show is not None:
            show(render_holders.registry_lines(name, views[0]))

    try:
        snapshot, extra = with_wait(
            lambda: look(ask), budget=budget, cap=cap, say=say, refused=registry_view
        )
    except LookTimedOut as exc:
        raise CommandFailed(f"database {name!r}: {exc}", 2) from exc
    except GaveUp as exc:
        if not views and exc.__cause__ is not None:  # gave up without a retry (no budget)
            registry_view(classify(exc.__cause__))
        if not views:  # the face gives no registry
            raise CommandFailed(str(exc), 2) from exc
        raise CapFull(str(exc), views[0], shown=show is not None) from exc
    except errors as exc:
        found = classify(exc)
        where = f" at {address}" if found.kind is Kind.UNREACHABLE else ""
        raise CommandFailed(f"database {name!r}{where}: {found.short}", 2) from exc
    by_id = None if holders is None else holders(snapshot).by_id
    return {**render.listing(vendor, snapshot, by_id), **extra}
