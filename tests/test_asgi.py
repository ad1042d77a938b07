"""Under ASGI every request's connections are handed back when it ends (uvicorn, the suite's
capped server, CONN_MAX_AGE = 60); under WSGI they are kept as Django keeps them."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import traffic_run
import unixhttp
from asgiref.sync import async_to_sync
from conftest import account_ids_once, run_command
from django.conf import settings
from django.core.checks import WARNING, CheckMessage
from django.core.checks.registry import registry
from django.db import connections
from django.test import AsyncClient, Client, override_settings
from testsite.hygiene_urls import connection_id

from pa_dbhealth import sandbox
from pa_dbhealth.checks import check_asgi_persistent_connections

TESTS = Path(__file__).resolve().parent
CONCURRENCY = 3  # the account's cap: the plain backend cannot serve more at once


class Uvicorn:
    """uvicorn serving ``asgisite`` in a process of its own on a free loopback port."""

    def __init__(
        self,
        server: sandbox.SandboxInfo,
        tmp_path: Path,
        *,
        middleware: bool,
        gc: bool = True,
        uds: Path | None = None,
        engine: str = "django.db.backends.mysql",
    ) -> None:
        self.port = sandbox.free_port()
        self.uds = uds
        self.log = tmp_path / "uvicorn.log"
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])),
            "DJANGO_SETTINGS_MODULE": "asgisite.settings",
            "ASGISITE_DATABASE": json.dumps(server.database_settings(engine=engine)),
            "ASGISITE_MIDDLEWARE": "1" if middleware else "0",
            "ASGISITE_GC": "1" if gc else "0",
        }
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "asgisite.asgi:application",
            *(["--uds", str(uds)] if uds else ["--host", "127.0.0.1", "--port", str(self.port)]),
            "--no-access-log",
            "--log-level",
            "warning",
        ]
        with self.log.open("wb") as log:
            # Not from the checkout's folder: under tox, pa_dbhealth is the installed one.
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=log, cwd=tmp_path)
        deadline = time.monotonic() + 30
        while not self._listening():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"uvicorn did not start:\n{self.log.read_text()}")
            time.sleep(0.05)

    def _listening(self) -> bool:
        try:
            self.get("/no-database/")
        except OSError:
            return False
        return True

    def get(self, path: str) -> tuple[int, bytes]:
        if self.uds is not None:
            return unixhttp.get(self.uds, path)
        return unixhttp.answer(http.client.HTTPConnection("127.0.0.1", self.port, timeout=30), path)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def site(server: sandbox.SandboxInfo, admin: Any, tmp_path: Path) -> Iterator[Uvicorn]:
    """uvicorn with pa_dbhealth's middleware; the account holds nothing before and after."""
    yield from _serve(server, admin, tmp_path, middleware=True)


@pytest.fixture
def plain_site(server: sandbox.SandboxInfo, admin: Any, tmp_path: Path) -> Iterator[Uvicorn]:
    """The same site without pa_dbhealth's middleware (the control)."""
    yield from _serve(server, admin, tmp_path, middleware=False)


def _serve(
    server: sandbox.SandboxInfo, admin: Any, tmp_path: Path, **options: Any
) -> Iterator[Uvicorn]:
    for connection in connections.all(initialized_only=True):
        connection.close()  # this process's own (a test database's): the count is uvicorn's
    assert account_ids_once(admin, lambda ids: not ids) == [], "connections are left over"
    running = Uvicorn(server, tmp_path, **options)
    try:
        yield running
    finally:
        running.stop()
    account_ids_once(admin, lambda ids: not ids)


# 200 requests over sync and async views, a view without the database and a streaming body
# that queries.
PATHS = ["/select-one/", "/async-connection-id/", "/no-database/", "/streaming/"]


def drive(
    site: Uvicorn,
    admin_factory: Callable[[], Any],
    admin: Any,
    *,
    settle: float = 0.5,
    concurrency: int = CONCURRENCY,
) -> traffic_run.Traffic:
    return traffic_run.drive(
        site, PATHS, admin_factory, admin, settle=settle, concurrency=concurrency
    )


def test_200_requests_under_uvicorn_leave_no_connection_behind(
    site: Uvicorn, admin: Any, admin_factory: Callable[[], Any]
) -> None:
    traffic = drive(site, admin_factory, admin)
    print(f"with the middleware: {traffic}")
    assert traffic.requests == 200
    assert traffic.statuses == {200: 200}, site.output()
    assert traffic.cap_errors == 0 and "1226" not in site.output()
    assert traffic.most_in_flight == CONCURRENCY
    assert traffic.most_held <= traffic.most_in_flight
    assert set(traffic.left_after_rounds) == {0}


@pytest.fixture
def uds_site(server: sandbox.SandboxInfo, admin: Any, tmp_path: Path) -> Iterator[Uvicorn]:
    """uvicorn as PythonAnywhere runs an ASGI site (``--uds ${DOMAIN_SOCKET}``), with the
    middleware and the retrying backend."""
    engine = "pa_dbhealth.backends.mysql"
    short = Path(tempfile.mkdtemp(prefix="pa-uds-"))  # a socket's path has at most 107 bytes
    try:
        uds = short / "site.sock"
        yield from _serve(server, admin, tmp_path, middleware=True, uds=uds, engine=engine)
    finally:
        shutil.rmtree(short, ignore_errors=True)


def test_200_requests_4_at_a_time_on_a_unix_socket_leave_no_connection_behind(
    uds_site: Uvicorn, admin: Any, admin_factory: Callable[[], Any]
) -> None:
    traffic = drive(uds_site, admin_factory, admin, concurrency=4)
    print(f"uvicorn --uds, the middleware and the backend: {traffic}")
    assert traffic.requests == 200
    assert traffic.statuses == {200: 200}, uds_site.output()
    assert traffic.cap_errors == 0 and "1226" not in uds_site.output()
    assert traffic.most_in_flight == 4  # one more than the cap: it waits in the line
    assert traffic.most_held <= 3
    assert set(traffic.left_after_rounds) == {0}


def test_control_without_the_middleware_uvicorn_leaks_connections(
    plain_site: Uvicorn, admin: Any, admin_factory: Callable[[], Any]
) -> None:
    traffic = drive(plain_site, admin_factory, admin, settle=0.1)
    print(f"without the middleware: {traffic}")
    assert max(traffic.left_after_rounds) > 0  # connections held with no request in flight
    assert traffic.cap_errors > 0


def test_a_streaming_body_queries_on_the_views_connection_then_it_is_closed(
    site: Uvicorn, admin: Any
) -> None:
    status, body = site.get("/streaming/")
    assert status == 200
    in_view, in_body = body.decode().split(",")
    assert in_view == in_body  # kept open while the body streamed: it may query
    assert account_ids_once(admin, lambda ids: not ids) == []  # closed once it was sent


@pytest.fixture
def site_without_gc(server: sandbox.SandboxInfo, admin: Any, tmp_path: Path) -> Iterator[Uvicorn]:
    """The site with the middleware and the garbage collector off: a connection left in an
    ended thread stays until pa_dbhealth closes it."""
    yield from _serve(server, admin, tmp_path, middleware=True, gc=False)


def test_a_connection_left_by_a_body_that_raised_is_reclaimed_by_the_next_request(
    site_without_gc: Uvicorn, admin: Any
) -> None:
    site = site_without_gc
    with pytest.raises(http.client.IncompleteRead):
        site.get("/streaming-fails/")  # Django never signals the end of this request
    assert "the body failed half-way" in site.output()
    assert len(account_ids_once(admin, lambda ids: len(ids) == 1)) == 1  # its thread ended
    assert site.get("/select-one/") == (200, b"1")
    assert account_ids_once(admin, lambda ids: not ids) == []
    assert "was left open by a request thread that has ended: closed" in site.output()


def test_a_request_in_flight_keeps_its_connection_while_others_end(
    site: Uvicorn, admin: Any
) -> None:
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(site.get, "/sleep/1/")  # SELECT SLEEP(1) on its connection
        account_ids_once(admin, lambda ids: len(ids) == 1)
        for _ in range(5):
            assert site.get("/select-one/") == (200, b"1")
        assert slow.result() == (200, b"0")  # not interrupted: SLEEP() returns 0
    assert account_ids_once(admin, lambda ids: not ids) == []


# --- W021: persistent connections under ASGI ---------------------------------------------


def test_the_check_warns_in_the_process_uvicorn_serves(site: Uvicorn) -> None:
    status, body = site.get("/checks/")
    assert status == 200
    (found,) = json.loads(body)["checks"]
    assert found["id"] == "pa_dbhealth.W021"
    assert found["msg"].startswith(
        "DATABASES['default']['CONN_MAX_AGE'] = 60, but the site is served through ASGI "
        "(asgisite.asgi is loaded): each ASGI request runs its database work in a thread"
    )
    assert "Set DATABASES['default']['CONN_MAX_AGE'] = 0" in found["hint"]
    assert "Until then pa_dbhealth.middleware.ConnectionHygieneMiddleware closes" in found["hint"]


def w021(**overrides: Any) -> list[CheckMessage]:
    """The check alone (Django 6's own model checks ask the server for its version)."""
    with override_settings(**overrides):
        messages = check_asgi_persistent_connections()
    assert check_asgi_persistent_connections in registry.get_checks()
    assert check_asgi_persistent_connections.tags == ()  # type: ignore[attr-defined]  # static
    assert all(m.id == "pa_dbhealth.W021" for m in messages)
    return messages


def test_the_check_needs_asgi_and_a_kept_connection(max_age: Callable[[Any], None]) -> None:
    asgi = {"ASGI_APPLICATION": "mysite.asgi.application"}
    max_age(0)
    assert w021(**asgi) == []
    max_age(600)
    assert w021() == []  # WSGI: persistent connections work
    (warning,) = w021(**asgi)  # the SQLite alias is left out: it has no connection cap
    assert warning.level == WARNING
    assert "= 600, but the site is served through ASGI (ASGI_APPLICATION = " in warning.msg
    max_age(None)
    (warning,) = w021(**asgi)
    assert warning.msg.startswith("DATABASES['default']['CONN_MAX_AGE'] = None, but")
    without = [m for m in settings.MIDDLEWARE if not m.startswith("pa_dbhealth.")]
    (warning,) = w021(MIDDLEWARE=without, **asgi)
    assert "Add 'pa_dbhealth.middleware.ConnectionHygieneMiddleware' near the top" in str(
        warning.hint
    )


def test_the_check_does_not_touch_the_database(max_age: Callable[[Any], None]) -> None:
    max_age(60)
    assert len(w021(ASGI_APPLICATION="mysite.asgi.application")) == 1
    assert connections["default"].connection is None  # pytest-django refuses any connect here


# --- in this process: Django's test clients ------------------------------------------------

asgisite_urls = override_settings(ROOT_URLCONF="asgisite.urls")


@pytest.fixture
def max_age() -> Iterator[Callable[[Any], None]]:
    """Set CONN_MAX_AGE of the default alias, for this thread's wrapper and those other
    threads make; this thread's connection, opened under the old value, is closed."""
    before = connections.settings["default"]["CONN_MAX_AGE"]

    def set_(value: Any) -> None:
        if not connections["default"].in_atomic_block:
            connections["default"].close()
        connections.settings["default"]["CONN_MAX_AGE"] = value
        connections["default"].settings_dict["CONN_MAX_AGE"] = value

    yield set_
    set_(before)


def get(client: AsyncClient, path: str) -> Any:
    async def fetch() -> Any:  # AsyncClient.get is not a coroutine function on 4.2
        return await client.get(path)

    return async_to_sync(fetch)()


@asgisite_urls
def test_wsgi_keeps_persistent_connections_as_django_does(
    unblocked_db: None, max_age: Callable[[Any], None]
) -> None:
    max_age(60)
    assert get(AsyncClient(), "/no-database/").status_code == 200  # the ASGI path is set up
    client = Client()
    first = client.get("/connection-id/").content
    assert client.get("/connection-id/").content == first
    assert connections["default"].connection is not None  # kept for the next request
    connections["default"].close()


@asgisite_urls
def test_under_asgi_the_request_thread_keeps_no_connection(
    unblocked_db: None, max_age: Callable[[Any], None], admin: Any
) -> None:
    max_age(60)
    client = AsyncClient()  # its sync code runs in this thread, as under async_to_sync
    first = get(client, "/connection-id/").content
    assert connections["default"].connection is None
    assert get(client, "/no-database/").content == b"no database"
    assert get(client, "/connection-id/").content != first
    assert connections["default"].connection is None
    assert account_ids_once(admin, lambda ids: not ids) == []


@asgisite_urls
@pytest.mark.django_db
def test_under_asgi_a_tests_transaction_is_never_closed(max_age: Callable[[Any], None]) -> None:
    from django.contrib.auth.models import User

    max_age(60)
    User.objects.create(username="kept")
    before = connection_id()
    assert get(AsyncClient(), "/connection-id/").content.decode() == before
    assert connections["default"].in_atomic_block  # the test's transaction goes on
    assert connection_id() == before
    assert User.objects.filter(username="kept").exists()


@asgisite_urls
def test_under_asgi_a_stale_connection_of_a_shared_thread_is_replaced_first(
    unblocked_db: None, max_age: Callable[[Any], None], wait_timeout: Callable[[int], None]
) -> None:
    """A thread that also runs code outside requests (here: this one, under async_to_sync)
    may hold a connection the server has dropped: it is replaced before the view runs."""
    wait_timeout(2)
    max_age(60)
    stale = connection_id()  # opened outside any request
    time.sleep(2.5)
    assert get(AsyncClient(), "/connection-id/").content.decode() != stale


@pytest.mark.usefixtures("unblocked_db")
def test_dbcheck_reports_it_too(max_age: Callable[[Any], None]) -> None:
    """A deploy script that runs `dbcheck --fail-level warning` learns it without `check`."""
    max_age(60)
    with override_settings(ASGI_APPLICATION="mysite.asgi.application"):
        out, err, code = run_command("dbcheck", "--database", "default", "--fail-level", "warning")
    assert code == 1, out + err
    assert "WARNING pa_dbhealth.W021: DATABASES['default']['CONN_MAX_AGE'] = 60, but" in out
