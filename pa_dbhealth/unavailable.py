"""What a visitor and the log get when the database is unavailable, for the Django face
(Flask's is ``pa_dbhealth.flask.unavailable``): which alias failed, its lost connections
closed, the 503 with ``Retry-After`` a visitor sees (never the driver's text), and the cap
report the log gets at most every ``SNAPSHOT_EVERY`` seconds: this process's connections,
the server's rows and the registry's holders, each with the fix."""

from __future__ import annotations

import contextlib
import logging

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.http import HttpRequest, HttpResponse
from django.template import TemplateDoesNotExist, loader

from pa_dbhealth import holders, hygiene, tracker
from pa_dbhealth.alias_look import LookTimedOut, look_at_alias
from pa_dbhealth.core import render_holders, vendors
from pa_dbhealth.core.errors import Classified, classify
from pa_dbhealth.core.unavailable import answer, head

logger = logging.getLogger("pa_dbhealth.middleware")  # where these lines always were


def failing_alias(exception: BaseException) -> str:
    """The alias of the connection that raised ``exception``.

    Django's connection wrapper is on the exception's traceback (``ensure_connection``, the
    cursor, its error wrapper): the innermost one is taken. A connection's
    ``errors_occurred`` flag is only the fallback: it stays set on an alias whose connect
    failed earlier until it connects again, so it can name an older failure.
    """
    alias = None
    frame = exception.__traceback__
    while frame is not None:
        owner = frame.tb_frame.f_locals.get("self")
        wrapper = (
            owner if isinstance(owner, BaseDatabaseWrapper) else getattr(owner, "wrapper", None)
        )
        if isinstance(wrapper, BaseDatabaseWrapper):
            alias = str(wrapper.alias)
        frame = frame.tb_next
    if alias is not None:
        return alias
    for connection in connections.all(initialized_only=True):
        if connection.errors_occurred:
            return str(connection.alias)
    return DEFAULT_DB_ALIAS


def close_lost_connections(found: Classified) -> None:
    for connection in connections.all(initialized_only=True):
        if connection.errors_occurred and not connection.in_atomic_block:
            logger.warning(
                "Connection %r was lost (%s): closed, so the next request starts clean.",
                connection.alias,
                found.short,
            )
            with contextlib.suppress(DatabaseError):  # it is closed all the same
                connection.close()
    hygiene.forget_server_timeouts()  # the server may drop connections sooner than learned


def cap_response(found: Classified, request: HttpRequest | None = None) -> HttpResponse:
    """503 + Retry-After for a visitor: in words a visitor can use, never the driver's
    message (it names the account, and on PostgreSQL the host and port: those go to the
    log). A project template ``503.html`` gives the page the site's own look; it gets
    ``retry_after`` (seconds) and ``quota`` (True for an hourly quota)."""
    unavailable = answer(found)
    assert unavailable is not None  # only the cap and an hourly quota come here
    retry_after = unavailable.retry_after
    try:
        template = loader.get_template("503.html")
    except TemplateDoesNotExist:
        response = HttpResponse(
            unavailable.body, status=503, content_type="text/plain; charset=utf-8"
        )
    else:
        context = {"retry_after": retry_after, "quota": unavailable.quota}
        response = HttpResponse(template.render(context, request), status=503)
    response["Retry-After"] = str(retry_after)
    return response


def cap_report(found: Classified, alias: str) -> str:
    """The log entry for a refused connection: the error, this process's connections (from
    the tracker) and the account's connections with their holders: the server's list joined
    with the registry of holders when the server can be asked, else the registry's view."""
    held = tracker.open_connections()
    lines = [head(found, alias), f"This process holds {len(held)} open connection(s):"]
    lines += [f"  {c.describe()}" for c in held]
    lines += [f"    {line}" for c in held if c.origin for line in c.origin.splitlines()[-4:]]
    tracker.publish()  # this process's entries as they are now, for the next reader
    lines.append(server_rows(alias))
    return "\n".join(lines)


def server_rows(alias: str) -> str:
    """The account's connections as the server lists them (asked on an open connection of
    this thread, else with one connect attempt, which a full cap refuses), each with its
    holder from the registry; the registry's view alone when the server cannot be asked."""
    connection = connections[alias]
    if not vendors.is_applicable(connection.vendor):
        return "The server cannot be asked about the account's connections."
    try:
        snapshot = look_at_alias(alias, vendors.account_snapshot)
    except (DatabaseError, LookTimedOut) as exc:
        found = classify(exc).short if isinstance(exc, DatabaseError) else str(exc)
        reason = f"the server's list of the account's connections is unavailable: {found}"
        held = holders.for_alias(alias)
        view = render_holders.registry_view(held.found, held.holders, reason)
        return "\n".join(line for line, _ in render_holders.registry_lines(alias, view))
    held = holders.for_alias(alias, snapshot)
    limit = snapshot.account_limit if snapshot.account_limit is not None else "no cap"
    lines = [f"The account's connections on the server ({snapshot.total}, cap {limit}):"]
    named = []
    for c in snapshot.connections:
        lines.append(
            f"  id {c.id} host {c.host} db {c.db} command {c.command} state {c.state!r} "
            f"for {c.seconds} s{' (this probe)' if c.this_connection else ''}"
        )
        if not c.this_connection:
            holder = held.by_id.get(c.id)
            shown = None if holder is None else holder.as_dict()
            lines.append(f"    {render_holders.holder_line(shown)}")
            if shown is not None:
                named.append((c.id, shown))
    lines += [f"  {line}" for line in render_holders.leak_lines(named)]
    return "\n".join(lines)
