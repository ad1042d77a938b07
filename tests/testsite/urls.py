import contextlib
import os
import threading
import time
from typing import Any

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


_in_use: set[int] = set()  # server ids of the connections this process's requests use now
_in_use_lock = threading.Lock()


def attack(request: HttpRequest, mode: str, token: str) -> HttpResponse:
    """One request of the parking attack (``tests/test_parking_attack.py``): 409 when the
    connection it got was dirty (a transaction open, autocommit off) or in use by another
    thread of this process; else ``mode`` is done ("write": one committed row ``token``)."""
    from django.db import DatabaseError, connections, transaction

    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT CONNECTION_ID(), @@in_transaction, @@autocommit")
        used, in_transaction, autocommit = cursor.fetchone()
    with _in_use_lock:
        clash = used in _in_use
        _in_use.add(used)
    try:
        if clash or in_transaction or not autocommit:
            return HttpResponse(f"dirty {clash} {in_transaction} {autocommit}", status=409)
        _attack(mode, token, float(request.GET.get("sleep", 0)), connections, transaction)
        if mode == "error":
            with contextlib.suppress(DatabaseError), connections["default"].cursor() as c:
                c.execute("SELECT * FROM no_such_table")
    finally:
        with _in_use_lock:
            _in_use.discard(used)
    return HttpResponse(f"{os.getpid()} {used}")


def _attack(mode: str, token: str, sleep: float, connections: Any, transaction: Any) -> None:
    insert = "INSERT INTO parking_writes (token, pid) VALUES (%s, %s)"
    if mode == "write":
        with transaction.atomic(), connections["default"].cursor() as cursor:
            cursor.execute(insert, [token, os.getpid()])
            time.sleep(sleep)
    elif mode == "rollback":  # never committed
        with contextlib.suppress(RuntimeError), transaction.atomic():
            with connections["default"].cursor() as cursor:
                cursor.execute(insert, [token, os.getpid()])
            time.sleep(sleep)
            raise RuntimeError("rolled back")
    elif mode == "left-open":  # a transaction left open with raw SQL: never committed
        with connections["default"].cursor() as cursor:
            cursor.execute("START TRANSACTION")
            cursor.execute(insert, [token, os.getpid()])
    elif mode == "autocommit-off":  # changed behind Django's back
        with connections["default"].cursor() as cursor:
            cursor.execute("SET autocommit = 0")
    else:
        time.sleep(sleep)


urlpatterns = [
    path("attack/<str:mode>/<str:token>/", attack),
    path("connection/", connection),
    path("rows/<str:alias>/", rows),
    path("dbhealth/", include("pa_dbhealth.urls")),
    path("health/<str:alias>/", one_database),
    path("workers/", workers),
]
