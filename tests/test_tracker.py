"""The tracker sees every connection this process opens, and names probable leaks."""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from django.db import connections
from django.test import override_settings
from holders import Holder

from pa_dbhealth import tracker
from pa_dbhealth.tracker.threads import this_thread

mysql = pytest.mark.django_db(transaction=True)


def _by_thread(name: str) -> list[tracker.TrackedConnection]:
    return [c for c in tracker.open_connections() if c.thread_name == name]


def test_figures_has_the_agreed_keys() -> None:
    assert set(tracker.figures()) == {
        "opened",
        "closed",
        "open",
        "leaks",
        "connect_retries",
        "connect_giveups",
        "connect_handoffs",
        "probes_refused",
    }


def test_connect_retries_giveups_and_handoffs_are_counted() -> None:
    before = tracker.figures()
    tracker.note_connect_retry("default")
    tracker.note_connect_retry("default")
    tracker.note_connect_giveup("default")
    tracker.note_handoff("default")
    after = tracker.figures()
    assert after["connect_retries"] == before["connect_retries"] + 2
    assert after["connect_giveups"] == before["connect_giveups"] + 1
    assert after["connect_handoffs"] == before["connect_handoffs"] + 1


@mysql
def test_opening_and_closing_are_counted(account_ids: Any) -> None:
    connections["default"].close()
    before = tracker.figures()
    connections["default"].ensure_connection()
    during = tracker.figures()
    assert during["opened"] == before["opened"] + 1
    assert during["open"] == before["open"] + 1
    (mine,) = [c for c in tracker.open_connections() if c.thread_id == threading.get_ident()]
    assert mine.alias == "default"
    assert mine.vendor_id == connections["default"].connection.thread_id()
    assert mine.vendor_id in account_ids()
    assert not mine.probable_leak  # the main thread runs the tests, like a command
    connections["default"].close()
    after = tracker.figures()
    assert after["closed"] == during["closed"] + 1
    assert after["open"] == before["open"]
    assert after["opened"] - after["closed"] == after["open"]


@mysql
def test_last_use_is_measured_from_the_last_query() -> None:
    connection = connections["default"]
    connection.ensure_connection()
    opened_use = tracker.last_used(connection)
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    assert opened_use is not None
    assert (tracker.last_used(connection) or 0) > opened_use


@mysql
@override_settings(PA_DBHEALTH={"TRACK_ORIGINS": True})
def test_a_background_thread_that_keeps_its_connection_is_a_probable_leak(
    caplog: pytest.LogCaptureFixture,
) -> None:
    leaks_before = tracker.figures()["leaks"]
    # Opened by a lambda of this file: the origin the tracker reports.
    with (
        caplog.at_level(logging.WARNING, logger="pa_dbhealth.tracker"),
        Holder("forgotten-worker", lambda: connections["default"].ensure_connection()),
    ):
        (held,) = _by_thread("forgotten-worker")
        tracker.open_connections()  # asked twice: reported once
        assert held.probable_leak
        assert held.thread_alive
        assert held.caller is not None and __file__ in held.caller and "<lambda>" in held.caller
        assert held.origin is not None and "ensure_connection()" in held.origin
        assert tracker.figures()["leaks"] == leaks_before + 1
        reports = [r for r in caplog.records if "Probable connection leak" in r.getMessage()]
        assert len(reports) == 1
        assert "forgotten-worker" in reports[0].getMessage()
        assert "ensure_connection()" in reports[0].getMessage()
    assert _by_thread("forgotten-worker") == []  # it closed on release


@mysql
def test_a_thread_that_serves_requests_is_not_a_leak() -> None:
    def open_as_request_thread() -> None:
        tracker.request_started(sender=None)
        connections["default"].ensure_connection()

    with Holder("request-thread", open_as_request_thread):
        (held,) = _by_thread("request-thread")
        assert not held.probable_leak
        assert held.origin is None  # TRACK_ORIGINS follows DEBUG, which is off


@mysql
def test_runservers_command_thread_is_not_a_leak() -> None:
    # Under the autoreloader, runserver's checks and migration check run in this thread.
    with Holder(tracker.AUTORELOAD_THREAD):
        (held,) = _by_thread(tracker.AUTORELOAD_THREAD)
        assert not held.probable_leak


@mysql
def test_a_connection_opened_at_import_time_is_a_probable_leak(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "queries_at_import.py").write_text(
        "from django.db import connections\n"
        "with connections['default'].cursor() as cursor:\n"
        "    cursor.execute('SELECT 1')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    connections["default"].close()
    try:
        import queries_at_import  # noqa: F401
    finally:
        sys.modules.pop("queries_at_import", None)
    (held,) = [c for c in tracker.open_connections() if c.thread_id == threading.get_ident()]
    assert held.at_import and held.probable_leak
    assert held.caller is not None and "queries_at_import.py:2" in held.caller


@mysql
def test_a_thread_holds_a_connection_from_its_opening_to_its_close() -> None:
    """What the middleware reads to know a request's thread has nothing to check."""
    connection = connections["default"]
    connection.close()
    assert connection not in tracker.thread_connections()
    assert id(connection) not in (this_thread.wrappers or {})
    connection.ensure_connection()
    assert connection in tracker.thread_connections()
    closer = threading.Thread(target=connection.close)  # not this thread's to forget
    connection.inc_thread_sharing()
    closer.start()
    closer.join()
    connection.dec_thread_sharing()
    assert connection.connection is None
    assert id(connection) in (this_thread.wrappers or {})  # closed elsewhere: still listed
    assert connection not in tracker.thread_connections()
    connection.ensure_connection()
    connection.close()
    assert id(connection) not in (this_thread.wrappers or {})


# --- who marks a request's thread: the receiver, or the middleware first in MIDDLEWARE -------


def _receiver_connected() -> bool:
    from django.core.signals import request_started

    return any(key[0] == "pa_dbhealth.tracker.request" for key, *_ in request_started.receivers)


@pytest.fixture
def receiver_state() -> Any:
    """A WSGI-only process (no ASGI handler made yet: the suite's ASGI tests make one) with
    the tracker's request_started receiver connected; as it was after the test."""
    from pa_dbhealth.tracker import signals

    needed = signals._receiver_needed
    signals._receiver_needed = False
    signals.install()
    yield signals
    signals._receiver_needed = needed
    signals.install()


@mysql
def test_the_first_middleware_marks_request_threads_instead_of_the_receiver(
    receiver_state: Any,
) -> None:
    """Django's dispatcher costs a bare request more than the whole middleware: with the
    middleware first, the receiver goes and a request's thread is marked all the same."""
    from django.test import Client

    def request_then_hold() -> None:
        assert Client().get("/workers/").status_code == 200  # a request without database
        connections["default"].ensure_connection()  # a request thread's, between requests

    with Holder("served-a-request", request_then_hold):
        assert not _receiver_connected()
        (held,) = _by_thread("served-a-request")
        assert not held.probable_leak  # a request's thread: expected to hold connections


def test_under_asgi_the_receiver_stays(receiver_state: Any) -> None:
    """Under ASGI the middleware runs in the event loop, not in the request's thread."""
    from pa_dbhealth.middleware import ConnectionHygieneMiddleware

    async def get_response(request: Any) -> Any:
        return None

    ConnectionHygieneMiddleware(get_response)
    assert _receiver_connected()
    sync = ConnectionHygieneMiddleware(lambda request: None)  # a WSGI handler beside it
    assert not sync.marks_requests and _receiver_connected()


def test_below_other_middleware_the_receiver_stays(receiver_state: Any) -> None:
    """A middleware above it may connect before it runs: the receiver marks the thread."""
    from django.conf import settings

    from pa_dbhealth.middleware import ConnectionHygieneMiddleware

    later = [*settings.MIDDLEWARE[1:2], *settings.MIDDLEWARE[:1], *settings.MIDDLEWARE[2:]]
    with override_settings(MIDDLEWARE=later):
        made = ConnectionHygieneMiddleware(lambda request: None)
    assert not made.marks_requests and _receiver_connected()
