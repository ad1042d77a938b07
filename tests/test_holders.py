"""The Django face's registry of holders, in this process: when the tracker refreshes what
it published, and its leak rules. What both faces do alike is test_holders_published.py's."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connections
from django.test import Client, override_settings

from pa_dbhealth import holders, tracker
from pa_dbhealth.core import registry
from pa_dbhealth.core.registry import publishing as registry_publisher
from pa_dbhealth.tracker import publishing, records

mysql = pytest.mark.django_db(transaction=True)
urls = override_settings(ROOT_URLCONF="testsite.hygiene_urls")


@pytest.fixture
def where(tmp_path: Path) -> Iterator[Path]:
    """A registry of this test's own; the test starts with no connection open."""
    place = tmp_path / "holders"
    connections.close_all()
    # The test client's requests may have left this thread's request flag set: with
    # CONN_MAX_AGE = 0 nothing listens for their end (see tracker.signals).
    tracker.request_finished(sender=None)
    with override_settings(PA_DBHEALTH={"REGISTRY_DIR": str(place)}):
        tracker.publish()
        yield place
        connections.close_all()
        tracker.publish()


def published(where: Path) -> list[registry.Holder]:
    server, account = holders.server_of(connections["default"].settings_dict, "mysql")
    return registry.read(where).holders(server, account)


@pytest.fixture
def persistent() -> Iterator[None]:
    settings_dict = connections["default"].settings_dict
    before = settings_dict["CONN_MAX_AGE"]
    settings_dict["CONN_MAX_AGE"] = 60
    yield
    connections["default"].close()
    settings_dict["CONN_MAX_AGE"] = before


@mysql
@urls
def test_last_use_is_refreshed_when_due_and_only_then(
    where: Path, persistent: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = Client()
    client.get("/select-one/")
    (first,) = published(where)
    time.sleep(0.05)
    client.get("/select-one/")
    assert published(where) == [first]  # not due: the file keeps the first last use
    monkeypatch.setattr(registry_publisher, "REFRESH_EVERY", 0.0)
    monkeypatch.setattr(publishing, "_refresh_at", 0.0)
    client.get("/select-one/")  # due now: written at the request's end
    (later,) = published(where)
    assert later.connection.id == first.connection.id
    assert (later.connection.last_used or 0) > (first.connection.last_used or 0)


@mysql
@urls
def test_a_connection_held_long_in_a_request_is_published_at_its_next_query(
    where: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(records, "PUBLISH_AFTER", 0.3)
    tracker.request_started(sender=None)  # as a request would
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
        tracker.publish()
        assert published(where) == []  # a request's, and young
        time.sleep(0.4)
        monkeypatch.setattr(publishing, "_refresh_at", 0.0)  # the periodic check is due
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
        (holder,) = published(where)
        assert holder.connection.id == connections["default"].connection.thread_id()
    finally:
        tracker.request_finished(sender=None)


@mysql
def test_a_thread_that_keeps_its_connection_is_published_as_a_leak_with_its_fix(
    where: Path,
) -> None:
    opened, release = threading.Event(), threading.Event()

    def poll() -> None:
        connections["default"].ensure_connection()
        opened.set()
        release.wait(30)
        connections.close_all()

    thread = threading.Thread(target=poll, name="poller")
    thread.start()
    try:
        assert opened.wait(10)
        (holder,) = published(where)
        assert holder.connection.thread == "poller"
        assert holder.connection.leak is not None
        assert holder.connection.leak.kind == registry.THREAD
        assert "'poller' is not a request or command thread" in holder.connection.leak.why
        assert "fresh_connections" in holder.connection.leak.fix
    finally:
        release.set()
        thread.join(10)
    assert published(where) == []  # closed by its thread: gone


@mysql
def test_a_connection_opened_at_import_is_published_as_a_leak(
    where: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "opens_at_import.py").write_text(
        "from django.db import connections\n"
        "with connections['default'].cursor() as cursor:\n"
        "    cursor.execute('SELECT 1')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        import opens_at_import  # noqa: F401
    finally:
        sys.modules.pop("opens_at_import", None)
    (holder,) = published(where)
    assert holder.connection.caller is not None
    assert "opens_at_import.py:2" in holder.connection.caller
    assert holder.connection.leak is not None and holder.connection.leak.kind == registry.IMPORT
    assert "open it inside the function" in holder.connection.leak.fix


@mysql
def test_registry_dir_false_writes_nothing(tmp_path: Path) -> None:
    connections.close_all()
    with override_settings(PA_DBHEALTH={"REGISTRY_DIR": False}):
        connections["default"].ensure_connection()
        tracker.publish()
        assert holders.directory() is None
        assert registry.read(holders.directory()).problem is not None
        connections.close_all()


LISTENING = """
import django
from django.core.signals import request_finished, request_started
from django.db import connections

django.setup()
from pa_dbhealth import tracker  # noqa: E402


def request():
    request_started.send(sender=None)
    connections["default"].ensure_connection()
    request_finished.send(sender=None)  # Django's close_old_connections, then ours


for _ in range(3):
    request()
from pa_dbhealth import holders  # noqa: E402
from pa_dbhealth.core import registry  # noqa: E402

found = registry.read(holders.directory()).processes
listening = tracker.signals._listening
print("CONN_MAX_AGE=0:", listening, connections["default"].connection is None, found)
connections["default"].settings_dict["CONN_MAX_AGE"] = 60
request()
(process,) = registry.read(holders.directory()).processes
print("CONN_MAX_AGE=60:", tracker.signals._listening, len(process.connections))
"""


def test_request_ends_cost_nothing_until_a_request_keeps_a_connection(
    server: Any, tmp_path: Path
) -> None:
    """With CONN_MAX_AGE = 0 Django closes every request's connection at its end: nothing
    can outlive a request, so no receiver listens for request ends. The first persistent
    connection a request opens connects it, and it publishes that connection."""
    (tmp_path / "listening_settings.py").write_text(
        "from testsite.settings import *  # noqa: F403\n"
        f"DATABASES = {{'default': {server.database_settings()!r}}}\n"
    )
    (tmp_path / "listening.py").write_text(LISTENING)
    where = tmp_path / "holders"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(Path(__file__).parent)]),
        "DJANGO_SETTINGS_MODULE": "listening_settings",
        "PA_DBHEALTH_REGISTRY_DIR": str(where),
    }
    done = subprocess.run(
        [sys.executable, str(tmp_path / "listening.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "CONN_MAX_AGE=0: False True ()",
        "CONN_MAX_AGE=60: True 1",
    ]
