"""ConnectionHygieneMiddleware: stale connections closed around every request, a full
connection cap answered with 503 + Retry-After and a log that names who holds them.

It adds no query to a request: the staleness check reads only what this process already
knows (the tracker's last use of each connection, the learned server timeout). A request
whose thread holds no connection costs it one attribute read before and after the view
(docs/overhead.md).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.http import HttpRequest, HttpResponse
from django.template import TemplateDoesNotExist, loader

from pa_dbhealth import holders, hygiene, leases, tracker
from pa_dbhealth.audit import MIDDLEWARE_PATH
from pa_dbhealth.core import render_holders, vendors
from pa_dbhealth.core.errors import Classified, Kind, classify
from pa_dbhealth.core.unavailable import SNAPSHOT_EVERY, Throttle, answer, head
from pa_dbhealth.look import LookTimedOut, look
from pa_dbhealth.tracker.signals import keep_the_request_receiver, let_the_middleware_mark_requests
from pa_dbhealth.tracker.threads import this_thread

logger = logging.getLogger(__name__)

snapshot_throttle = Throttle(SNAPSHOT_EVERY)


class ConnectionHygieneMiddleware:
    """Close the request thread's stale connections at the start and end of each request
    (under ASGI, all of the request's connections at its end: ``pa_dbhealth.leases``);
    answer a full connection cap (1226, 1203, 1040) with 503 + Retry-After; close a lost
    connection (2006, 2013, 4031) so the next request starts clean."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        hygiene.require_app("ConnectionHygieneMiddleware")
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        self.marks_requests = False
        if self.async_mode:
            markcoroutinefunction(self)
            leases.watch_request_ends()
            keep_the_request_receiver()
        elif list(settings.MIDDLEWARE)[:1] == [MIDDLEWARE_PATH]:
            # First in the chain, nothing can connect before it in a request.
            self.marks_requests = let_the_middleware_mark_requests()

    def __call__(self, request: HttpRequest) -> Any:
        if self.async_mode:
            return self.__acall__(request)
        state = this_thread
        if self.marks_requests and not state.in_request:
            # What the tracker's request_started receiver would do (once per thread while
            # nothing resets the flag: each request start costs one attribute read).
            state.in_request = True
            if not state.holder:
                tracker.mark_holder()
        # A thread that holds no connection has nothing to check: one attribute read.
        if state.wrappers:
            hygiene.refresh_connections()
        response = self.get_response(request)
        # A streaming body may still query: Django closes after it.
        if state.wrappers and not response.streaming:
            hygiene.refresh_connections()
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        # Under ASGI the request's connections live in a thread made for it, which ends with
        # it: they are closed at its end whatever CONN_MAX_AGE says (see pa_dbhealth.leases).
        lease = leases.begin()
        if tracker.anything_open() and tracker.figures()["open"] > leases.leased_count():
            # Connections opened outside requests (a thread shared with sync code): the
            # request's thread may hold a stale one. Otherwise there is nothing to check and
            # no reason to visit the request's thread.
            await sync_to_async(hygiene.refresh_connections)()
        get_response: Callable[[HttpRequest], Awaitable[HttpResponse]] = self.get_response
        try:
            response = await get_response(request)
        except BaseException:  # cancelled: the client went away (Django closes at the end)
            lease.ended = True
            raise
        if response.streaming:  # the body may still query: Django closes after it
            leases.until_streamed(response, lease)
            return response
        lease.ended = True
        if lease.opened:
            await sync_to_async(leases.release)()
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, DatabaseError):
            return None
        found = classify(exception)
        if found.kind is Kind.LOST:
            close_lost_connections(found)
            return None
        if found.kind.is_cap or found.kind is Kind.HOURLY_QUOTA:
            leases.reclaim_orphans()  # connections left in ended ASGI request threads
            alias = failing_alias(exception)
            if snapshot_throttle.ready():
                logger.error("%s", cap_report(found, alias))
            return cap_response(found, request)
        return None


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
        snapshot = look(alias, vendors.account_snapshot)
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
