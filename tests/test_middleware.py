"""ConnectionHygieneMiddleware against the capped server: idle connections of async
requests, a full cap, lost connections, and no cost for a view that does not use the
database. A connection the server killed or dropped, and its control: test_reuse_faces,
run for both faces."""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from conftest import AddAlias
from django.conf import settings
from django.db import connections
from django.db.utils import OperationalError
from django.test import AsyncClient, Client, override_settings
from holders import Holders

from pa_dbhealth import middleware, tracker
from pa_dbhealth.core import unavailable

mysql = pytest.mark.django_db(transaction=True)
urls = override_settings(ROOT_URLCONF="testsite.hygiene_urls")
without_middleware = override_settings(
    MIDDLEWARE=[m for m in settings.MIDDLEWARE if not m.startswith("pa_dbhealth.")]
)

SERVER_TIMEOUT = 2
PAUSE = 2.5


@pytest.fixture
def short_timeout(idle_timeout: Callable[[int], None]) -> Iterator[None]:
    idle_timeout(SERVER_TIMEOUT)
    with override_settings(PA_DBHEALTH={"TIMEOUT_MARGIN": 1}):
        yield


@pytest.fixture(params=[600, None], ids=["max_age_600", "max_age_None"])
def persistent(request: pytest.FixtureRequest) -> Iterator[None]:
    """Persistent connections (with CONN_MAX_AGE = 0 the middleware closes the connection
    at each request's start, as Django does, and idleness never shows)."""
    settings_dict = connections["default"].settings_dict
    before = settings_dict["CONN_MAX_AGE"]
    settings_dict["CONN_MAX_AGE"] = request.param
    connections["default"].close()
    yield
    connections["default"].close()
    settings_dict["CONN_MAX_AGE"] = before


@pytest.fixture(autouse=True)
def fresh_throttle() -> None:
    middleware.snapshot_throttle.reset()


def open_default() -> None:
    """A holder's opener defined here: the cap report names where each was opened."""
    connections["default"].ensure_connection()


@mysql
@urls
def test_async_requests_get_the_same_check(
    short_timeout: None, persistent: None, pause: Callable[[float], None]
) -> None:
    client = AsyncClient()

    async def get(path: str) -> Any:  # AsyncClient.get is not a coroutine function on 4.2
        return await client.get(path)

    assert async_to_sync(get)("/select-one/").content == b"1"
    pause(PAUSE)
    assert async_to_sync(get)("/select-one/").content == b"1"


@mysql
@urls
def test_at_a_full_cap_the_log_says_which_threads_hold_the_connections(
    holders: Holders, caplog: pytest.LogCaptureFixture
) -> None:
    """The 503 itself (body, Retry-After, one report a minute) is test_503_at_the_cap's,
    for both faces; this is what the middleware's report says of this process's threads."""
    connections["default"].close()
    holders.hold(3, open_default)  # the account's whole cap, held by threads of this process
    with caplog.at_level(logging.ERROR, logger="pa_dbhealth.middleware"):
        response = Client().get("/select-one/")
    assert response.status_code == 503
    (report,) = [r.getMessage() for r in caplog.records if r.name == "pa_dbhealth.middleware"]
    assert "the cap is full" in report
    assert "This process holds 3 open connection(s)" in report
    for held in tracker.open_connections():
        assert f"id {held.vendor_id} held by thread '{held.thread_name}'" in report
    assert all(f"holder-{n}" in report for n in (1, 2, 3))
    assert "test_middleware.py" in report  # where each was opened
    # The probe connect is refused too: the log says so instead of guessing.
    assert "connections is unavailable: (1226)" in report


@mysql
@urls
def test_the_503_page_is_the_projects_own_template(holders: Holders, tmp_path: Any) -> None:
    (tmp_path / "503.html").write_text(
        "<h1>Busy</h1>{% if quota %}quota{% else %}back in {{ retry_after }} s{% endif %}"
    )
    templates = [
        {"BACKEND": "django.template.backends.django.DjangoTemplates", "DIRS": [str(tmp_path)]}
    ]
    connections["default"].close()
    holders.hold(3)
    with override_settings(TEMPLATES=templates):  # inside @urls' override, undone before it
        response = Client().get("/select-one/")
    assert response.status_code == 503
    assert response.content == f"<h1>Busy</h1>back in {unavailable.RETRY_AFTER} s".encode()
    assert response["Content-Type"].startswith("text/html")
    assert response["Retry-After"] == str(unavailable.RETRY_AFTER)


@mysql
@urls
def test_at_a_full_cap_the_log_names_the_holders_from_the_registry_with_the_fix(
    holders: Holders, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    connections["default"].close()
    with (
        override_settings(PA_DBHEALTH={"REGISTRY_DIR": str(tmp_path / "holders")}),
        caplog.at_level(logging.ERROR, logger="pa_dbhealth.middleware"),
    ):
        holders.hold(3)
        assert Client().get("/select-one/").status_code == 503
    (report,) = [r.getMessage() for r in caplog.records if r.name == "pa_dbhealth.middleware"]
    assert "the registry of holders says (not the server):" in report
    for held in tracker.open_connections():
        assert re.search(
            rf"  id {held.vendor_id}: pid {os.getpid()} on .*thread '{held.thread_name}'", report
        )
        assert (
            f"probable leak, id {held.vendor_id} (pid {os.getpid()}, thread "
            f"'{held.thread_name}'): its thread '{held.thread_name}' is not a request" in report
        )
    assert "Fix: put fresh_connections around the thread's work" in report
    assert "What the registry cannot know" in report


@mysql
@urls
def test_the_log_lists_the_server_rows_when_this_thread_can_ask(
    raw_connections: Callable[..., list[Any]], caplog: pytest.LogCaptureFixture, persistent: None
) -> None:
    connections["default"].ensure_connection()  # the request's connection: 1 of 3
    raw = raw_connections(2)  # held elsewhere: the cap is full
    with caplog.at_level(logging.ERROR, logger="pa_dbhealth.middleware"):
        response = Client().get("/second-connection/")
    assert response.status_code == 503
    (report,) = [r.getMessage() for r in caplog.records if r.name == "pa_dbhealth.middleware"]
    # 3, or 4 when the server still lists the refused connect, in state Connect.
    assert re.search(r"The account's connections on the server \([34], cap 3\):", report)
    for conn in raw:
        assert f"id {conn.thread_id()} host " in report
    assert "command Sleep" in report
    # The raw connections belong to no process with pa_dbhealth: the log says so.
    for conn in raw:
        assert re.search(
            rf"  id {conn.thread_id()} host [^\n]*\n    not tracked: a process without pa_dbhealth",
            report,
        )


@mysql
@urls
def test_a_connection_lost_during_a_request_is_closed_for_the_next_one(
    admin: Any, caplog: pytest.LogCaptureFixture, persistent: None
) -> None:
    client = Client(raise_request_exception=False)
    assert client.get("/select-one/").status_code == 200
    victim = connections["default"].connection.thread_id()
    killer = threading.Timer(0.5, admin.execute, ["KILL CONNECTION %s", [victim]])
    killer.start()
    with caplog.at_level(logging.WARNING, logger="pa_dbhealth.middleware"):
        assert client.get("/sleep/3/").status_code == 500
    killer.join()
    assert connections["default"].connection is None
    assert "was lost" in caplog.text
    assert client.get("/select-one/").content == b"1"


@mysql
@urls
def test_no_query_and_no_connection_for_a_view_without_database_use(
    django_assert_num_queries: Any,
) -> None:
    connections["default"].ensure_connection()  # an open connection it could have pinged
    opened = tracker.figures()["opened"]
    with django_assert_num_queries(0):
        for _ in range(3):
            assert Client().get("/no-database/").content == b"no database"
    assert tracker.figures()["opened"] == opened
    connections["default"].close()
    with django_assert_num_queries(0):
        assert Client().get("/no-database/").status_code == 200
    assert connections["default"].connection is None


@mysql
@urls
def test_a_streaming_body_keeps_the_request_connection() -> None:
    # CONN_MAX_AGE = 0: the connection is given back when a response is rendered, but a
    # streaming body runs later and may query: it must not need a second connection.
    assert connections["default"].settings_dict["CONN_MAX_AGE"] == 0
    response = Client().get("/streaming/")
    first, second = b"".join(response.streaming_content).decode().split(",")
    assert first == second
    response.close()


@pytest.fixture
def quota_alias(server: Any, admin: Any, temporary_alias: AddAlias) -> Iterator[str]:
    """An alias for an account whose hourly query quota is one query."""
    admin.execute(
        "CREATE USER 'quota'@'%' IDENTIFIED BY 'quota-password' WITH MAX_QUERIES_PER_HOUR 1"
    )
    admin.execute("GRANT ALL PRIVILEGES ON `app`.* TO 'quota'@'%'")
    settings_dict = {**server.database_settings(), "USER": "quota", "PASSWORD": "quota-password"}
    alias = temporary_alias("quota", settings_dict)
    yield alias
    connections[alias].close()
    admin.execute("DROP USER 'quota'@'%'")


@pytest.mark.usefixtures("unblocked_db")
@urls
def test_an_hourly_quota_answers_503_saying_waiting_will_not_help(
    quota_alias: str, caplog: pytest.LogCaptureFixture
) -> None:
    # An older failure on another alias stays flagged on its connection: the log must
    # still name the alias that failed now.
    with pytest.raises(OperationalError):
        connections["unreachable"].ensure_connection()
    assert connections["unreachable"].errors_occurred
    with caplog.at_level(logging.ERROR, logger="pa_dbhealth.middleware"):
        response = Client().get(f"/select-one-on/{quota_alias}/")
    assert response.status_code == 503
    assert response["Retry-After"] == str(unavailable.QUOTA_RETRY_AFTER)
    assert response.content == unavailable.QUOTA_BODY.encode()
    assert b"quota'" not in response.content and b"max_queries" not in response.content
    (report,) = [r.getMessage() for r in caplog.records if r.name == "pa_dbhealth.middleware"]
    assert f"Database {quota_alias!r}: the hourly quota max_queries_per_hour is used up" in report


def swept_elsewhere() -> None:
    """Another thread sweeps the process's ledger (as the health view and the registry do):
    the middleware skips its reads when the ledger is empty."""
    sweeper = threading.Thread(target=tracker.figures)
    sweeper.start()
    sweeper.join()


# The middleware skips its checks when the request's thread holds no connection (or the
# process none): each way a thread comes to hold one must still get the connection checked
# at the next request.
OPENINGS = {
    "in_an_earlier_request": lambda client: client.get("/select-one/"),
    "outside_requests": lambda client: connections["default"].ensure_connection(),
    "after_a_close": lambda client: (
        client.get("/select-one/"),
        connections.close_all(),  # the thread forgets the connection...
        client.get("/select-one/"),  # ...and learns it again when it opens anew
    ),
    "then_a_sweep": lambda client: (client.get("/select-one/"), swept_elsewhere()),
}


@mysql
@urls
@pytest.mark.parametrize("opened", OPENINGS)
def test_a_connection_gone_stale_is_closed_before_a_view_without_database(
    short_timeout: None, persistent: None, pause: Callable[[float], None], opened: str
) -> None:
    client = Client()
    OPENINGS[opened](client)
    assert client.get("/default-open/").content == b"open"  # fresh: kept
    pause(1.5)  # past the idle limit (2 s - 1 s margin), within the server's 2 s
    assert client.get("/default-open/").content == b"closed"


@mysql
@urls
@without_middleware
def test_control_without_the_middleware_the_stale_connection_reaches_the_view(
    short_timeout: None, persistent: None, pause: Callable[[float], None]
) -> None:
    client = Client()
    client.get("/select-one/")
    pause(1.5)
    assert client.get("/default-open/").content == b"open"


@mysql
@urls
def test_a_connection_of_a_thread_started_in_a_view_is_still_tracked() -> None:
    """The request's thread holds nothing, so the middleware has nothing to check; the
    thread the view started is no request thread: its connection is a probable leak."""
    from testsite.hygiene_urls import thread_may_end

    client = Client()
    thread_may_end.clear()
    assert client.get("/starts-a-thread/").content == b"started"
    try:
        assert client.get("/no-database/").status_code == 200
        (held,) = [c for c in tracker.open_connections() if c.thread_name == "started-in-a-view"]
        assert held.probable_leak and held.thread_alive
        assert connections["default"].connection is None  # this thread's: never opened
    finally:
        thread_may_end.set()
        for thread in threading.enumerate():
            if thread.name == "started-in-a-view":
                thread.join(10)
    assert [c for c in tracker.open_connections() if c.thread_name == "started-in-a-view"] == []
