"""fresh_connections and keep_fresh against a server that drops idle connections after 2 s."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.db import connections, transaction
from django.db.utils import OperationalError
from django.test import override_settings

from pa_dbhealth import fresh_connections, hygiene, keep_fresh, tracker
from pa_dbhealth.core.errors import Kind, classify
from pa_dbhealth.core.timeouts import idle_limit

mysql = pytest.mark.django_db(transaction=True)

SERVER_TIMEOUT = 2  # seconds: the server drops a connection idle this long
PAUSE = 2.5  # longer than SERVER_TIMEOUT: the connection dies during it
# The control waits for real: the server's timeout is its point. The others only need the
# connection idle past the limit and dropped by the server: ``pause`` does both at once.
Pause = Callable[[float], None]
MARGIN = {"TIMEOUT_MARGIN": 1}  # idle limit: 2 - 1 = 1 s


@pytest.fixture(params=[0, 600, None], ids=["max_age_0", "max_age_600", "max_age_None"])
def conn_max_age(request: pytest.FixtureRequest) -> Iterator[int | None]:
    """CONN_MAX_AGE of the default alias for connections opened during the test."""
    settings_dict = connections["default"].settings_dict
    before = settings_dict["CONN_MAX_AGE"]
    settings_dict["CONN_MAX_AGE"] = request.param
    connections["default"].close()
    yield request.param
    connections["default"].close()
    settings_dict["CONN_MAX_AGE"] = before


@pytest.fixture
def short_timeout(idle_timeout: Callable[[int], None]) -> Iterator[None]:
    idle_timeout(SERVER_TIMEOUT)
    with override_settings(PA_DBHEALTH=MARGIN):
        yield


def select_one() -> int:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT 1")
        return int(cursor.fetchone()[0])


def server_id() -> int:
    return int(connections["default"].connection.thread_id())


@mysql
def test_control_a_plain_loop_meets_a_dead_connection(
    short_timeout: None, conn_max_age: int | None
) -> None:
    with pytest.raises(OperationalError) as caught:
        for _ in range(2):
            select_one()
            time.sleep(PAUSE)
    assert classify(caught.value).kind is Kind.LOST
    assert classify(caught.value).code in (2006, 2013, 4031)


@mysql
def test_keep_fresh_replaces_the_dead_connection(
    short_timeout: None, conn_max_age: int | None, pause: Pause
) -> None:
    seen = []
    for _ in keep_fresh(range(2)):
        assert select_one() == 1
        seen.append(server_id())
        pause(PAUSE)
    assert seen[0] != seen[1]  # a new connection for the second item


@mysql
def test_fresh_connections_replaces_the_dead_connection(
    short_timeout: None, conn_max_age: int | None, pause: Pause
) -> None:
    @fresh_connections
    def work() -> int:
        return select_one()

    assert work() == 1
    pause(PAUSE)
    assert work() == 1


@mysql
def test_fresh_connections_closes_on_exit_by_conn_max_age(conn_max_age: int | None) -> None:
    with fresh_connections():
        select_one()
    # CONN_MAX_AGE = 0 means "not beyond this unit of work", like a request; others stay.
    assert (connections["default"].connection is None) is (conn_max_age == 0)


@mysql
def test_fresh_connections_checks_on_exit_also_when_the_body_raises(
    short_timeout: None, pause: Pause
) -> None:
    with pytest.raises(ZeroDivisionError), fresh_connections():
        select_one()
        pause(1.2)  # past the 1 s idle limit, not past the server's 2 s
        raise ZeroDivisionError
    assert connections["default"].connection is None


@mysql
def test_fresh_connections_forms(short_timeout: None, pause: Pause) -> None:
    class Command:
        @fresh_connections()
        def handle(self) -> int:
            return select_one()

    Command().handle()
    pause(PAUSE)
    assert Command().handle() == 1
    pause(PAUSE)
    with fresh_connections():
        assert select_one() == 1


@mysql
def test_fresh_connections_on_a_coroutine_function(short_timeout: None, pause: Pause) -> None:
    @fresh_connections
    async def work() -> int:
        return await sync_to_async(select_one)()

    assert async_to_sync(work)() == 1
    pause(PAUSE)
    assert async_to_sync(work)() == 1


@mysql
def test_nothing_is_closed_in_an_atomic_block(
    short_timeout: None, caplog: pytest.LogCaptureFixture, pause: Pause
) -> None:
    with caplog.at_level(logging.WARNING, logger="pa_dbhealth.hygiene"), transaction.atomic():
        select_one()
        before = server_id()
        pause(1.2)  # stale by the 1 s limit, still alive on the server
        with fresh_connections():
            pass
        for _ in keep_fresh(range(3)):
            pass
        assert server_id() == before
        assert select_one() == 1
    warnings = [r for r in caplog.records if "inside an atomic block" in r.getMessage()]
    assert len(warnings) == 3  # entry and exit of fresh_connections, once for the loop
    assert all("idle for" in r.getMessage() for r in warnings)


@mysql
def test_keep_fresh_costs_no_query_and_no_reconnect_while_fresh(
    conn_max_age: int | None, django_assert_num_queries: Any
) -> None:
    select_one()
    opened = tracker.figures()["opened"]
    with django_assert_num_queries(0):
        assert sum(1 for _ in keep_fresh(range(1000))) == 1000
    assert tracker.figures()["opened"] == opened
    assert connections["default"].connection is not None


@mysql
def test_keep_fresh_every_sets_the_idle_limit(pause: Pause) -> None:
    select_one()
    seen = []
    for _ in keep_fresh(range(2), every=0.2):
        select_one()
        seen.append(server_id())
        pause(0.3)
    assert seen[0] != seen[1]
    with pytest.raises(ValueError, match="every"):
        keep_fresh([], every=0)


@mysql
def test_the_server_timeout_is_learned(idle_timeout: Callable[[int], None]) -> None:
    idle_timeout(7)
    assert hygiene.server_idle_timeout("default") == 300  # the setting, until a connection
    select_one()
    assert hygiene.server_idle_timeout("default") == 7
    with override_settings(PA_DBHEALTH={"TIMEOUT_MARGIN": 2}):
        assert hygiene.alias_idle_limit("default") == 5


def test_idle_limit_is_the_timeout_minus_the_margin() -> None:
    assert idle_limit(300, 20) == (280.0, False)
    assert idle_limit(10, 20) == (5.0, True)


def _iterate_with_a_pause(queryset: Any) -> list[str]:
    """Iterate ``queryset`` in chunks of 100 under keep_fresh(every=0.05), pausing past the
    idle limit in the middle of the second chunk: the connection must not be closed there."""
    seen = []
    for index, item in enumerate(keep_fresh(queryset.iterator(chunk_size=100), every=0.05)):
        if index == 150:
            time.sleep(0.1)
        seen.append(item.model)
    return seen


def _many_content_types(using: str) -> None:
    from django.contrib.contenttypes.models import ContentType

    ContentType.objects.using(using).bulk_create(
        [ContentType(app_label="many", model=f"m{i:03d}") for i in range(300)]
    )


@mysql
def test_keep_fresh_never_closes_a_connection_in_the_middle_of_an_iterator() -> None:
    from django.contrib.contenttypes.models import ContentType

    _many_content_types("default")
    queryset = ContentType.objects.filter(app_label="many").order_by("model")
    assert _iterate_with_a_pause(queryset) == [f"m{i:03d}" for i in range(300)]
    with connections["default"].cursor() as cursor:  # and the connection is fine after it
        cursor.execute("SELECT 1")


def test_keep_fresh_never_closes_a_server_side_cursor_between_chunks(pg: str) -> None:
    """PostgreSQL reads an iterator through a server-side cursor, chunk by chunk."""
    from django.contrib.contenttypes.models import ContentType

    with connections[pg].schema_editor() as editor:
        editor.create_model(ContentType)
    _many_content_types(pg)
    queryset = ContentType.objects.using(pg).order_by("model")
    assert _iterate_with_a_pause(queryset) == [f"m{i:03d}" for i in range(300)]


def test_the_tools_refuse_to_run_without_the_app_installed() -> None:
    """Without the app there is no tracker, so no staleness rule: silently doing nothing is
    what let a site fail with 2006 while `check` said "no issues"."""
    from django.core.exceptions import ImproperlyConfigured

    from pa_dbhealth.middleware import ConnectionHygieneMiddleware

    others = [app for app in settings.INSTALLED_APPS if app != "pa_dbhealth"]
    with override_settings(INSTALLED_APPS=others):
        with pytest.raises(ImproperlyConfigured, match="needs 'pa_dbhealth' in INSTALLED_APPS"):
            ConnectionHygieneMiddleware(lambda request: None)
        with pytest.raises(ImproperlyConfigured, match="fresh_connections needs"):
            fresh_connections().__enter__()
        with pytest.raises(ImproperlyConfigured, match="keep_fresh needs"):
            keep_fresh([])
