"""Freeing idle connections from the status page: first what would be killed, then the kill.

The rules are ``dbconnections --kill-idle N``'s, applied by ``vendors.kill_idle``: only the
account's own connections, only idle ones (idle for ``N`` seconds or more), never the
connection the page looks through, never one inside a transaction; each is checked again
right before its kill. A server that does not show transactions (MySQL without the PROCESS
privilege, as on PythonAnywhere) leaves every connection's transaction unknown: those are
spared unless the person ticks "include_unknown", the page's ``--include-transactions``.

The form's fields: ``database``, ``min_idle`` (seconds), ``id`` (repeated: the connections
ticked on the confirmation), ``include_unknown``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pa_dbhealth.core import cli_steps as commands
from pa_dbhealth.core import vendors
from pa_dbhealth.core.vendors import AccountConnection, KillResult

UNKNOWN = "transaction unknown"
DEFAULT_MIN_IDLE = 60


class Form(Protocol):
    """A POST body as Django's ``QueryDict`` and Werkzeug's ``MultiDict`` both give it."""

    def get(self, key: str, /) -> Any: ...

    def getlist(self, key: str) -> list[Any]: ...


class BadRequest(ValueError):
    """A form the page did not write: the message names the field."""


@dataclass(frozen=True)
class Request:
    """What a kill form asks for, checked."""

    database: str
    min_idle: float
    ids: tuple[int, ...] = ()
    include_unknown: bool = False


def parse(form: Form, names: Sequence[str]) -> Request:
    """The kill form's fields, or :class:`BadRequest` naming the one that is wrong."""
    name = str(form.get("database") or "")
    if name not in names:
        raise BadRequest(f"database: {name!r} is not one of {', '.join(map(repr, names))}")
    try:
        min_idle = commands.seconds(str(form.get("min_idle") or DEFAULT_MIN_IDLE))
    except ValueError as exc:
        raise BadRequest(f"min_idle: {exc}") from None
    try:
        ids = tuple(int(value) for value in form.getlist("id"))
    except ValueError:
        raise BadRequest("id: each must be a connection id (a whole number)") from None
    if any(i < 0 for i in ids):
        raise BadRequest("id: each must be a connection id (a whole number)")
    return Request(name, min_idle, ids, form.get("include_unknown") == "1")


def candidates(min_idle: float) -> Callable[[Any], tuple[AccountConnection, ...]]:
    """The question a look asks for the confirmation: the account's connections idle for
    ``min_idle`` seconds or more, besides the page's own (killed only once confirmed)."""

    def ask(raw: Any) -> tuple[AccountConnection, ...]:
        snapshot = vendors.account_snapshot(raw)
        return tuple(
            c
            for c in snapshot.connections
            if c.idle and not c.this_connection and c.idle_seconds >= min_idle
        )

    return ask


def kill(request: Request) -> Callable[[Any], KillResult]:
    """The question a look asks once confirmed: kill the ticked connections that are, when
    each one's turn comes, still the account's own, idle for ``min_idle`` seconds or more
    and outside a transaction; with ``include_unknown``, also those whose transaction the
    server does not show (idle for a second at least: a transaction begun in the last
    instant may not show yet where the server does show them)."""

    def ask(raw: Any) -> KillResult:
        result = vendors.kill_idle(raw, request.ids, min_idle=request.min_idle)
        unknown = [i for i, why in result.spared.items() if why == UNKNOWN]
        if request.include_unknown and unknown:
            more = vendors.kill_idle(
                raw, unknown, min_idle=max(request.min_idle, 1), include_transactions=True
            )
            for conn_id in more.killed:
                del result.spared[conn_id]
            result.killed.extend(more.killed)
            result.spared.update(more.spared)
        return result

    return ask
