from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse


def _ok() -> HttpResponse:
    return HttpResponse(b"ok", content_type="text/plain")


def db(request: HttpRequest) -> HttpResponse:
    """Holds a database connection for BENCH_HOLD seconds: one ``SELECT SLEEP()`` (on
    PostgreSQL ``pg_sleep()``)."""
    sleep = "pg_sleep" if connection.vendor == "postgresql" else "SLEEP"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {sleep}(%s)", [settings.BENCH_HOLD])
        cursor.fetchone()
    return _ok()


def nodb(request: HttpRequest) -> HttpResponse:
    """No database use: what the middleware costs on its own."""
    return _ok()
