"""pa_dbhealth.sqlalchemy.install against the real capped server: connects that wait at the
cap, a server restart, dirty connections never handed out at checkout, probable leaks.
Dead and idle connections replaced at checkout: test_reuse_faces, run for both faces."""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import sqlalchemy_url
from faults import kill_server
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from pa_dbhealth import sandbox
from pa_dbhealth.sqlalchemy import install, tracker

pytestmark = pytest.mark.matrix_once  # the same on every Django version

LOGGER = "pa_dbhealth.sqlalchemy"


def connection_id(engine: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT CONNECTION_ID()")).scalar_one())


@pytest.fixture
def table(admin: Any) -> Iterator[str]:
    """A table of the app account's database, dropped after the test."""
    admin.execute("CREATE TABLE app.pa_sqla_rows (n INT) ENGINE=InnoDB")
    yield "pa_sqla_rows"
    admin.execute("DROP TABLE app.pa_sqla_rows")


# --- connect: waiting at the cap ----------------------------------------------------------


def test_a_connect_waits_for_a_free_connection(
    make_engine: Callable[..., Any], raw_connections: Any
) -> None:
    engine = install(make_engine(poolclass=NullPool), {"CONNECT_RETRY": 10.0})
    held = raw_connections(3)
    before = tracker.figures()
    threading.Timer(0.5, held[0].close).start()
    started = time.monotonic()
    assert connection_id(engine) > 0
    assert time.monotonic() - started >= 0.4
    after = tracker.figures()
    assert after["connect_retries"] > before["connect_retries"]
    assert after["connect_giveups"] == before["connect_giveups"]


def test_a_connect_gives_up_at_the_deadline(
    make_engine: Callable[..., Any], raw_connections: Any, caplog: pytest.LogCaptureFixture
) -> None:
    engine = install(make_engine(poolclass=NullPool), {"CONNECT_RETRY": 1.0})
    raw_connections(3)
    before = tracker.figures()["connect_giveups"]
    started = time.monotonic()
    with pytest.raises(OperationalError) as raised:
        connection_id(engine)
    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 10
    assert raised.value.orig.args[0] == 1226
    assert tracker.figures()["connect_giveups"] == before + 1
    assert "gave up connecting to mysql+mysqldb://app:***@" in caplog.text
    assert sandbox_password() not in caplog.text


def sandbox_password() -> str:
    import conftest

    assert conftest._info is not None
    return conftest._info.password


def test_without_install_the_cap_fails_at_once(
    make_engine: Callable[..., Any], raw_connections: Any
) -> None:
    engine = make_engine(poolclass=NullPool)
    raw_connections(3)
    with pytest.raises(OperationalError) as raised:
        connection_id(engine)
    assert raised.value.orig.args[0] == 1226


def test_a_wrong_password_is_not_retried(make_engine: Callable[..., Any], server: Any) -> None:
    url = sqlalchemy_url(server).replace(server.password, "wrong-password")
    engine = install(make_engine(url), {"CONNECT_RETRY": 30.0})
    started = time.monotonic()
    with pytest.raises(OperationalError) as raised:
        connection_id(engine)
    assert raised.value.orig.args[0] == 1045
    assert time.monotonic() - started < 5


# --- checkout: a restart, dirty connections (dead and idle ones: test_reuse_faces) --------


@pytest.mark.parametrize("installed", [True, False])
def test_a_server_restart_is_survived(
    make_engine: Callable[..., Any],
    spare_server: sandbox.SandboxInfo,
    installed: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = make_engine(sqlalchemy_url(spare_server), pool_size=1, max_overflow=0)
    if installed:
        install(engine)
    connection_id(engine)
    kill_server(spare_server)
    sandbox.restart(spare_server)
    if not installed:
        with pytest.raises(OperationalError) as raised:
            connection_id(engine)
        assert raised.value.orig.args[0] in (2006, 2013)
        return
    # The restarted server numbers connections from 1 again: the log tells the replacement.
    assert connection_id(engine) > 0
    assert "the server closed it" in caplog.text


def _dirty_checkin(engine: Any, table: str) -> int:
    """Insert a row on a raw pooled connection and give it back without commit or rollback
    (with ``pool_reset_on_return=None`` the pool does not roll back); its connection id."""
    raw = engine.raw_connection()
    cursor = raw.cursor()
    cursor.execute("SELECT CONNECTION_ID()")
    (first,) = cursor.fetchone()
    cursor.execute(f"INSERT INTO {table} VALUES (1)")  # noqa: S608 (a constant)
    cursor.close()
    raw.close()  # back to the pool, the transaction still open
    return int(first)


@pytest.mark.parametrize("driver", ["mysqldb", "pymysql"])
def test_a_connection_given_back_inside_a_transaction_is_never_handed_out(
    make_engine: Callable[..., Any], server: Any, table: str, driver: str
) -> None:
    url = sqlalchemy_url(server, driver)
    engine = install(make_engine(url, pool_size=1, max_overflow=0, pool_reset_on_return=None))
    first = _dirty_checkin(engine, table)
    with engine.connect() as again:
        assert again.execute(text("SELECT CONNECTION_ID()")).scalar_one() != first
        assert again.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one() == 0  # noqa: S608


def test_without_install_the_dirty_connection_is_handed_out(
    make_engine: Callable[..., Any], table: str
) -> None:
    from pa_dbhealth.core import liveness

    engine = make_engine(pool_size=1, max_overflow=0, pool_reset_on_return=None)
    first = _dirty_checkin(engine, table)
    with engine.connect() as again:
        assert liveness.in_transaction(again.connection.dbapi_connection) is True
        assert again.execute(text("SELECT CONNECTION_ID()")).scalar_one() == first
        again.rollback()


def test_postgresql_dirty_connection_is_never_handed_out(
    make_engine: Callable[..., Any], pg_server: Any, pg_admin: Any
) -> None:
    url = sqlalchemy_url(pg_server, "psycopg")
    engine = install(make_engine(url, pool_size=1, max_overflow=0, pool_reset_on_return=None))
    raw = engine.raw_connection()
    cursor = raw.cursor()
    cursor.execute("SELECT pg_backend_pid()")
    (first,) = cursor.fetchone()
    cursor.close()
    raw.close()  # psycopg began a transaction for the SELECT: given back inside it
    with engine.connect() as again:
        assert again.execute(text("SELECT pg_backend_pid()")).scalar_one() != first


# --- handoff: in test_handoff.py, run for both faces ---------------------------------------


# --- probable leaks -----------------------------------------------------------------------


def test_a_session_held_too_long_is_named_with_its_line(
    make_engine: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    engine = install(make_engine(pool_size=2, max_overflow=0), leak_after=0.5)
    session = Session(engine)
    line = sys._getframe().f_lineno + 1
    session.execute(text("SELECT 1"))  # the session keeps its connection (and transaction)
    time.sleep(0.7)
    connection_id(engine)  # a checkout looks at the others
    leaks = [r for r in caplog.records if "Probable connection leak" in r.getMessage()]
    assert len(leaks) == 1
    message = leaks[0].getMessage()
    assert f"{__file__}:{line} in test_a_session_held_too_long_is_named_with_its_line" in message
    assert "checked out for 0.5 s or more" in message
    connection_id(engine)
    assert len([r for r in caplog.records if "Probable connection leak" in r.getMessage()]) == 1
    session.close()


def _forget_to_close(engine: Any) -> int:
    session = Session(engine)
    session.execute(text("SELECT 1"))
    return sys._getframe().f_lineno - 1  # the line that checked the connection out


@pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")
def test_a_session_never_closed_is_named_with_its_line(
    make_engine: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    engine = install(make_engine(pool_size=1, max_overflow=0))
    before = tracker.figures()["leaks"]
    line = _forget_to_close(engine)
    gc.collect()
    leaks = [r.getMessage() for r in caplog.records if "Probable connection leak" in r.getMessage()]
    assert len(leaks) == 1
    assert f"{__file__}:{line} in _forget_to_close" in leaks[0]
    assert "never returned" in leaks[0]
    assert tracker.figures()["leaks"] == before + 1


def test_sessions_closed_are_not_leaks(
    make_engine: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    engine = install(make_engine(pool_size=1, max_overflow=0), leak_after=0.2)
    for _ in range(3):
        with Session(engine) as session:
            session.execute(text("SELECT 1"))
        time.sleep(0.25)
    assert "Probable connection leak" not in caplog.text


def test_figures_count_opened_and_closed(make_engine: Callable[..., Any]) -> None:
    engine = install(make_engine(poolclass=NullPool))
    before = tracker.figures()
    for _ in range(3):
        connection_id(engine)
    after = tracker.figures()
    assert after["opened"] - before["opened"] == 3
    assert after["closed"] - before["closed"] == 3


def test_a_forked_child_never_hands_over_its_parents_connection(
    make_engine: Callable[..., Any],
) -> None:
    """A pool inherited across a fork holds the parent's sockets (SQLAlchemy asks for
    ``engine.dispose(close=False)`` in the child): the child never hands one over to a
    thread of its own."""
    from pa_dbhealth.core.options import effective
    from pa_dbhealth.sqlalchemy.connect import may_hand_over

    options = effective({"LINE": False})  # handoff is what runs without the line
    engine = install(make_engine(), options)
    with engine.connect() as conn:
        raw, entry = conn.connection.dbapi_connection, conn.connection._connection_record
        assert may_hand_over(raw, entry, options)  # the parent's own: it may
        child = os.fork()
        if child == 0:
            os._exit(1 if may_hand_over(raw, entry, options) else 0)
        _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
