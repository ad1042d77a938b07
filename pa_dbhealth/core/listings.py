"""What ``dbconnections`` does on one database, for every face: list the account's
connections, optionally kill its idle ones.

A face gives a ``look`` (open a connection for one question, close it again; one attempt)
and the registry of holders of the database's server and account (``holders``); each row of
the server's list is joined with the process that holds it. When the cap is full the look
is refused at once, and the registry answers instead, counted against the cap: "3 of 3 in
use (the server refused this look): 2 named below, 1 not tracked". Nothing waits: the
answer is needed most when nothing can be opened. Every face prints the result with
``core.render``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pa_dbhealth.core import line as lines
from pa_dbhealth.core import render, render_holders, vendors
from pa_dbhealth.core.cli_steps import CommandFailed
from pa_dbhealth.core.errors import Classified, Kind, classify
from pa_dbhealth.core.look import LookTimedOut
from pa_dbhealth.core.registry.holders import AccountHolders
from pa_dbhealth.core.render_holders import WAY_OUT

Holders = Callable[["vendors.AccountSnapshot | None"], AccountHolders]


def question(
    kill_idle: float | None, include_transactions: bool, dry_run: bool
) -> Callable[[Any], tuple[vendors.AccountSnapshot, dict[str, Any]]]:
    """The question a look asks: the account's connections, plus ``killed``/``spared`` or,
    with ``dry_run``, ``would_kill``/``spared`` by exactly the same rules."""

    def ask(raw: Any) -> tuple[vendors.AccountSnapshot, dict[str, Any]]:
        snapshot = vendors.account_snapshot(raw)
        if kill_idle is None:
            return snapshot, {}
        candidates = [
            c.id
            for c in snapshot.connections
            if c.idle and not c.this_connection and c.idle_seconds >= kill_idle
        ]
        outcome = vendors.kill_idle(
            raw,
            candidates,
            min_idle=kill_idle,
            include_transactions=include_transactions,
            dry_run=dry_run,
        ).as_dict()
        if dry_run:
            outcome["would_kill"] = outcome.pop("killed")
        return snapshot, outcome

    return ask


def listing(
    name: str,
    vendor: str,
    display_name: str,
    look: Callable[[Callable[[Any], Any]], Any],
    *,
    kill_idle: float | None,
    include_transactions: bool,
    dry_run: bool,
    cap: int,
    errors: tuple[type[BaseException], ...],
    address: str,
    holders: Holders | None = None,
    account: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """One database's listing (and kills) through ``look(question)`` (``display_name``: what
    the vendor is called when it does not apply), each row with its ``holder`` when the face
    gives the registry (``holders``). At a full cap, the registry's view counted against the
    cap (``source: "registry"``). Whatever else stops it is a :class:`CommandFailed` with
    code 2 naming ``name`` (and ``address`` when no server answers there). ``account``
    (server, account) lets a look that saw the server heal the account's line."""
    if not vendors.is_applicable(vendor):
        note = vendors.not_applicable(vendor, display_name).note
        return {"applicable": False, "note": note, "limit": None, "connections": []}
    ask = question(kill_idle, include_transactions, dry_run)
    try:
        snapshot, extra = look(ask)
    except LookTimedOut as exc:
        raise CommandFailed(f"database {name!r}: {exc}", 2) from exc
    except errors as exc:
        found = classify(exc)
        if found.kind.is_cap and holders is not None:
            return refused_view(found, cap, holders(None), kill_idle is not None and not dry_run)
        where = f" at {address}" if found.kind is Kind.UNREACHABLE else ""
        raise CommandFailed(f"database {name!r}{where}: {found.short}", 2) from exc
    if account is not None:
        lines.heal(*account, snapshot.account_limit, len(snapshot.connections))
    by_id = None if holders is None else holders(snapshot).by_id
    return {**render.listing(vendor, snapshot, by_id), **extra}


def refused_view(
    refused: Classified, cap: int, held: AccountHolders, wanted_kill: bool
) -> dict[str, Any]:
    """The registry's answer when the server refused the look: every slot is in use; those
    the registry names, and the rest not tracked (a console, another host, an app without
    pa_dbhealth)."""
    limit = lines.cap_in_message(refused.message) or cap
    named = len(held.holders)
    headline = (
        f"{limit} of {limit} in use (the server refused this look: {refused.code}): "
        f"{named} named below, {max(limit - named, 0)} not tracked"
    )
    view = render_holders.registry_view(held.found, held.holders, headline)
    view.update(limit=limit, in_use=limit, named=named, not_tracked=max(limit - named, 0))
    view["way_out"] = WAY_OUT
    if wanted_kill:
        view["killed"], view["not_done"] = [], "nothing was killed: no connection to look with"
    return view
