"""Views for the uvicorn runs: sync and async views that query, a view that does not, and
streaming bodies that query (testsite's, and one that then raises)."""

from __future__ import annotations

from collections.abc import Iterator

from asgiref.sync import sync_to_async
from django.core.checks import run_checks
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import path
from testsite.hygiene_urls import connection_id, no_database, select_one, sleep, streaming


async def async_connection_id(request: HttpRequest) -> HttpResponse:
    return HttpResponse(await sync_to_async(connection_id)())


def streaming_fails(request: HttpRequest) -> StreamingHttpResponse:
    """A body that queries and then raises: Django's ASGI handler never signals the end of
    this request, and its thread ends with the connection still open."""

    def body() -> Iterator[str]:
        yield connection_id()
        raise RuntimeError("the body failed half-way")

    return StreamingHttpResponse(body())


def checks(request: HttpRequest) -> JsonResponse:
    """pa_dbhealth's system check messages, as the serving process sees them."""
    found = [m for m in run_checks() if (m.id or "").startswith("pa_dbhealth.")]
    return JsonResponse({"checks": [{"id": m.id, "msg": m.msg, "hint": m.hint} for m in found]})


urlpatterns = [
    path("checks/", checks),
    path("select-one/", select_one),
    path("no-database/", no_database),
    path("async-connection-id/", async_connection_id),
    path("connection-id/", lambda request: HttpResponse(connection_id())),
    path("streaming/", streaming),
    path("streaming-fails/", streaming_fails),
    path("sleep/<str:seconds>/", sleep),
]
