from django.http import HttpRequest, HttpResponse
from django.urls import include, path

from pa_dbhealth import views


def one_database(request: HttpRequest, alias: str) -> HttpResponse:
    """The health view for one alias, so a test can leave the others out of the picture."""
    return views.health(request, databases=[alias])


def workers(request: HttpRequest) -> HttpResponse:
    """How many requests the site serves at once, as pa_dbhealth sees it (under uWSGI)."""
    from pa_dbhealth.core.workers import concurrent_workers  # only this view needs it

    found = concurrent_workers(None)
    return HttpResponse(f"{found.number}|{found.source}", content_type="text/plain")


def connection(request: HttpRequest) -> HttpResponse:
    """``<pid> <connection id>``: which worker answered, on which server connection."""
    import os

    from django.db import connections

    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT CONNECTION_ID()")
        return HttpResponse(f"{os.getpid()} {cursor.fetchone()[0]}")


def rows(request: HttpRequest, alias: str) -> HttpResponse:
    """A short transaction on ``alias`` (PostgreSQL): a request's everyday work."""
    from django.db import connections, transaction

    with transaction.atomic(using=alias), connections[alias].cursor() as cursor:
        cursor.execute("SELECT count(*), pg_sleep(0.005) FROM pg_class WHERE relname <> %s", ["x"])
        return HttpResponse(str(cursor.fetchone()[0]))


urlpatterns = [
    path("connection/", connection),
    path("rows/<str:alias>/", rows),
    path("dbhealth/", include("pa_dbhealth.urls")),
    path("health/<str:alias>/", one_database),
    path("workers/", workers),
]
