"""Views for the middleware tests (used with ``override_settings(ROOT_URLCONF=...)``)."""

from __future__ import annotations

from collections.abc import Iterator

from django.db import connections
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.urls import path


def no_database(request: HttpRequest) -> HttpResponse:
    return HttpResponse("no database")


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
    path("sleep/<str:seconds>/", sleep),
    path("no-database/", no_database),
    path("select-one/", select_one),
    path("second-connection/", second_connection),
]
