"""The retrying backend against the real capped server: it waits for a free connection,
gives up with the original 1226, and retries nothing else (no other error, no query)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import MySQLdb
import pytest
from django.db import connections, transaction
from django.db.utils import OperationalError
from django.test import override_settings

from pa_dbhealth import tracker
from pa_dbhealth.backends.mysql.base import DatabaseWrapper
from pa_dbhealth.core.errors import Kind, classify

ALIAS = "retrying"
LOGGER = "pa_dbhealth.backends.mysql"

pytestmark = pytest.mark.usefixtures("unblocked_db")

Make = Callable[..., DatabaseWrapper]


@pytest.fixture
def make_wrapper(server: Any) -> Iterator[Make]:
    """A connection of the retrying backend to the suite's server, outside ``connections``
    (so no test database is created for it); registered in this thread for ``atomic``."""
    made: list[DatabaseWrapper] = []

    def make(**overrides: Any) -> DatabaseWrapper:
        settings_dict = {**server.database_settings(engine="pa_dbhealth.backends.mysql")}
        settings_dict.update(overrides)
        configured = connections.configure_settings({"default": settings_dict})["default"]
        wrapper = DatabaseWrapper(configured, alias=ALIAS)
        made.append(wrapper)
        connections[ALIAS] = wrapper
        return wrapper

    yield make
    for wrapper in made:
        wrapper.close()
    if hasattr(connections._connections, ALIAS):  # type: ignore[attr-defined]
        del connections[ALIAS]


def retry_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.DEBUG]


def giveup_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]


def figures() -> tuple[int, int]:
    counts = tracker.figures()
    return int(counts["connect_retries"]), int(counts["connect_giveups"])


def test_connect_waits_until_a_connection_frees_up(
    make_wrapper: Make, raw_connections: Any, account_ids: Any, caplog: pytest.LogCaptureFixture
) -> None:
    held = raw_connections(3)
    with pytest.raises(MySQLdb.OperationalError):  # the cap really is full
        raw_connections(1)
    wrapper = make_wrapper()
    release = threading.Timer(0.5, held[0].close)
    retries_before, giveups_before = figures()
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    release.start()
    started = time.monotonic()
    try:
        wrapper.ensure_connection()
    finally:
        release.cancel()
    elapsed = time.monotonic() - started

    assert 0.45 <= elapsed < 1.5  # it waited for the release, then got in promptly
    assert wrapper.connection.thread_id() in account_ids()
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
    retries = retry_records(caplog)
    assert retries
    assert "(1226)" in retries[0].getMessage() and repr(ALIAS) in retries[0].getMessage()
    assert not giveup_records(caplog)
    retries_after, giveups_after = figures()
    assert retries_after - retries_before == len(retries)
    assert giveups_after == giveups_before


def test_gives_up_after_the_deadline_with_the_original_error(
    make_wrapper: Make, raw_connections: Any, caplog: pytest.LogCaptureFixture
) -> None:
    raw_connections(3)
    wrapper = make_wrapper()
    retries_before, giveups_before = figures()
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    started = time.monotonic()
    with (
        override_settings(PA_DBHEALTH={"CONNECT_RETRY": 1.0}),
        pytest.raises(OperationalError) as excinfo,
    ):
        wrapper.ensure_connection()
    elapsed = time.monotonic() - started

    assert 1.0 <= elapsed < 1.6
    # Exactly what Django raises for a refused connect: its OperationalError with the
    # driver's 1226 as the cause.
    assert excinfo.value.args[0] == 1226
    assert isinstance(excinfo.value.__cause__, MySQLdb.OperationalError)
    assert excinfo.value.__cause__.args == excinfo.value.args
    assert classify(excinfo.value).kind is Kind.ACCOUNT_CAP
    assert wrapper.connection is None
    retries = retry_records(caplog)
    (giveup,) = giveup_records(caplog)
    assert len(retries) >= 5
    assert f"after {len(retries) + 1} attempts" in giveup.getMessage()
    assert "(1226)" in giveup.getMessage()
    retries_after, giveups_after = figures()
    assert retries_after - retries_before == len(retries)
    assert giveups_after - giveups_before == 1


def test_no_retry_budget_means_one_attempt(
    make_wrapper: Make, raw_connections: Any, caplog: pytest.LogCaptureFixture
) -> None:
    raw_connections(3)
    wrapper = make_wrapper()
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    with (
        override_settings(PA_DBHEALTH={"CONNECT_RETRY": 0}),
        pytest.raises(OperationalError) as excinfo,
    ):
        wrapper.ensure_connection()
    assert excinfo.value.args[0] == 1226
    assert not retry_records(caplog)
    assert len(giveup_records(caplog)) == 1


@pytest.mark.parametrize(
    ("overrides", "code", "kind"),
    [
        ({"PASSWORD": "wrong"}, 1045, Kind.ACCESS_DENIED),
        ({"NAME": "no_such_database", "admin": True}, 1049, Kind.UNKNOWN_DATABASE),
    ],
    ids=["access-denied", "unknown-database"],
)
def test_other_connect_errors_are_raised_at_once(
    make_wrapper: Make,
    server: Any,
    raw_connections: Any,
    caplog: pytest.LogCaptureFixture,
    overrides: dict[str, Any],
    code: int,
    kind: Kind,
) -> None:
    raw_connections(3)  # a full cap must not turn these into waits
    if overrides.pop("admin", False):
        admin = server.database_settings(admin=True)
        overrides.update(USER=admin["USER"], PASSWORD=admin["PASSWORD"])
    wrapper = make_wrapper(**overrides)
    retries_before, giveups_before = figures()
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    started = time.monotonic()
    with pytest.raises(OperationalError) as excinfo:
        wrapper.ensure_connection()
    assert time.monotonic() - started < 0.5  # CONNECT_RETRY is the default 5 s
    assert excinfo.value.args[0] == code
    assert classify(excinfo.value).kind is kind
    assert not retry_records(caplog) and not giveup_records(caplog)
    assert figures() == (retries_before, giveups_before)


def test_hourly_quota_is_not_retried(
    make_wrapper: Make, server: Any, admin: Any, caplog: pytest.LogCaptureFixture
) -> None:
    admin.execute(
        "CREATE USER 'retry_quota'@'%' IDENTIFIED BY 'quota-pass' WITH MAX_CONNECTIONS_PER_HOUR 1"
    )
    try:
        MySQLdb.connect(
            host=server.host, port=server.port, user="retry_quota", password="quota-pass"
        ).close()
        wrapper = make_wrapper(NAME="", USER="retry_quota", PASSWORD="quota-pass")
        caplog.set_level(logging.DEBUG, logger=LOGGER)
        started = time.monotonic()
        with pytest.raises(OperationalError) as excinfo:
            wrapper.ensure_connection()
        assert time.monotonic() - started < 0.5
        assert excinfo.value.args[0] == 1226
        assert classify(excinfo.value).kind is Kind.HOURLY_QUOTA
        assert not retry_records(caplog) and not giveup_records(caplog)
    finally:
        admin.execute("DROP USER 'retry_quota'@'%'")


def test_a_failed_query_is_not_retried(
    make_wrapper: Make,
    admin: Any,
    raw_connections: Any,
    account_ids: Any,
    settled_ids: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrapper = make_wrapper()
    wrapper.ensure_connection()
    (own_id,) = account_ids()
    admin.execute(f"KILL {own_id}")
    raw_connections(3)  # a reconnect would now meet a full cap and wait
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    started = time.monotonic()
    with pytest.raises(OperationalError) as excinfo, wrapper.cursor() as cursor:
        cursor.execute("SELECT 1")
    assert time.monotonic() - started < 0.5
    assert classify(excinfo.value).kind is Kind.LOST
    assert not retry_records(caplog)
    assert own_id not in settled_ids(lambda ids: own_id not in ids)


def test_an_atomic_block_is_not_retried_or_reentered(
    make_wrapper: Make,
    admin: Any,
    raw_connections: Any,
    account_ids: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrapper = make_wrapper()
    runs = 0
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    started = time.monotonic()
    with pytest.raises(OperationalError) as excinfo, transaction.atomic(using=ALIAS):
        runs += 1
        with wrapper.cursor() as cursor:
            cursor.execute("SELECT 1")
            (own_id,) = account_ids()
            admin.execute(f"KILL {own_id}")
            held = raw_connections(3)  # a reconnect would now meet a full cap and wait
            try:
                cursor.execute("SELECT 2")
            finally:
                # The broken transaction stays broken: no new connection behind its back.
                with pytest.raises(OperationalError) as again:
                    wrapper.cursor().execute("SELECT 3")
                ids_inside, retries_inside = account_ids(), retry_records(caplog)
                held_ids = sorted(c.thread_id() for c in held)
                # After the block Django reconnects to restore autocommit (its own
                # behaviour, outside the block): leave room so that is quick.
                held[0].close()
    assert runs == 1
    assert classify(excinfo.value).kind is Kind.LOST  # the query's own error, not retried
    assert classify(again.value).kind is Kind.LOST
    assert ids_inside == held_ids
    assert retries_inside == []
    assert time.monotonic() - started < 1.0


def server_autocommit(wrapper: DatabaseWrapper) -> int:
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT @@autocommit")
        return int(cursor.fetchone()[0])


def test_connects_in_django_autocommit_mode_and_transactions_still_work(
    make_wrapper: Make,
) -> None:
    # The connect skips MySQLdb's "autocommit off, then on again": the mode must still be
    # Django's, on the server too, and atomic blocks must still switch it off and back.
    wrapper = make_wrapper()
    wrapper.ensure_connection()
    assert wrapper.connection.get_autocommit() is True
    assert server_autocommit(wrapper) == 1
    with transaction.atomic(using=ALIAS):
        assert server_autocommit(wrapper) == 0
    assert server_autocommit(wrapper) == 1
    manual = make_wrapper(AUTOCOMMIT=False)
    manual.ensure_connection()
    assert server_autocommit(manual) == 0
    assert manual.get_autocommit() is False
