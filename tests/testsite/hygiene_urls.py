"""Views for the middleware tests (used with ``override_settings(ROOT_URLCONF=...)``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from django.db import connections
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.urls import path


def no_database(request: HttpRequest) -> HttpResponse:
    return HttpResponse("no database")


def default_open(request: HttpRequest) -> HttpResponse:
    """Whether this thread's 'default' connection is open as the view starts (asks nothing
    of the database: a view without database use that shows what the middleware left)."""
    return HttpResponse("open" if connections["default"].connection is not None else "closed")


# Set by a test to let the thread started by ``starts_a_thread`` close its connection and end.
thread_may_end = threading.Event()


def starts_a_thread(request: HttpRequest) -> HttpResponse:
    """Starts a thread that opens a connection of its own and keeps it until
    ``thread_may_end`` is set; the view itself uses no database."""

    opened = threading.Event()

    def work() -> None:
        connections["default"].ensure_connection()
        opened.set()
        thread_may_end.wait(30)
        connections["default"].close()

    threading.Thread(target=work, name="started-in-a-view", daemon=True).start()
    opened.wait(10)
    return HttpResponse("started")


def select_one(request: HttpRequest) -> HttpResponse:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT 1")
        return HttpResponse(str(cursor.fetchone()[0]))


def second_connection(request: HttpRequest) -> HttpResponse:
    """Opens a connection of its own besides the request's, as some code does."""
    extra = connections.create_connection("default")
    try:
        extra.ensure_connection()
    finally:
        extra.close()
    return HttpResponse("two connections")


def connection_id() -> str:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT CONNECTION_ID()")
        return str(cursor.fetchone()[0])


def connection_id_view(request: HttpRequest) -> HttpResponse:
    """The server's id of the connection the view runs its query on."""
    return HttpResponse(connection_id())


def streaming(request: HttpRequest) -> StreamingHttpResponse:
    """Queries in the view and again while the body streams out."""
    first = connection_id()

    def body() -> Iterator[str]:
        yield f"{first},"
        yield connection_id()

    return StreamingHttpResponse(body())


def sleep(request: HttpRequest, seconds: str) -> HttpResponse:
    """Holds the connection in a query for ``seconds``: a test can kill it meanwhile."""
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT SLEEP(%s)", [float(seconds)])
        return HttpResponse(str(cursor.fetchone()[0]))


def select_one_on(request: HttpRequest, alias: str) -> HttpResponse:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT 1")
        return HttpResponse(str(cursor.fetchone()[0]))


urlpatterns = [
    path("select-one-on/<str:alias>/", select_one_on),
    path("streaming/", streaming),
    path("connection-id/", connection_id_view),
    path("sleep/<str:seconds>/", sleep),
    path("no-database/", no_database),
    path("default-open/", default_open),
    path("starts-a-thread/", starts_a_thread),
    path("select-one/", select_one),
    path("second-connection/", second_connection),
]
