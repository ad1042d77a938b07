"""ConnectionHygieneMiddleware: stale connections closed around every request, a full
connection cap answered with 503 + Retry-After and a log that names who holds them.

It adds no query to a request: the staleness check reads only what this process already
knows (the tracker's last use of each connection, the learned server timeout). A request
in a process that holds no connection costs it a read of the tracker's ledger before and
after the view; one whose thread holds none, a thread-local read more (docs/overhead.md).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse

from pa_dbhealth import hygiene, leases, tracker
from pa_dbhealth.conf import get_settings
from pa_dbhealth.core.errors import Kind, classify
from pa_dbhealth.core.unavailable import SNAPSHOT_EVERY, Throttle
from pa_dbhealth.tracker.ledger import records
from pa_dbhealth.tracker.signals import keep_the_request_receiver, let_the_middleware_mark_requests
from pa_dbhealth.tracker.threads import this_thread
from pa_dbhealth.unavailable import (
    cap_report,
    cap_response,
    close_lost_connections,
    failing_alias,
)

MIDDLEWARE_PATH = "pa_dbhealth.middleware.ConnectionHygieneMiddleware"
# Bytes of a response a socket's buffers usually take at once, however slowly the client
# reads: a connection PARK keeps is parked after such a response is sent, not before it
# (the response does not wait); before a longer one, so no slow reader holds the slot.
SHORT_RESPONSE = 32 * 1024
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
        # A thread that holds no connection has nothing to check: when no connection is
        # open in the process (every opening is in the ledger), not even the thread's list
        # is read.
        if records and state.wrappers:
            hygiene.refresh_connections()
        response = self.get_response(request)
        # A streaming body may still query: Django closes after it. A connection PARK keeps
        # is parked once a short response is sent (a long one may wait for a slow reader).
        if records and state.wrappers and not response.streaming:
            short = get_settings().PARK and len(response.content) <= SHORT_RESPONSE
            hygiene.refresh_connections(request_ends=short)
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
