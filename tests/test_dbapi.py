"""pa_dbhealth.dbapi: raw scripts' connections against the real capped server, with real
faults: a short wait_timeout, a link cut while a write's answer is on its way, a cap filled
by raw connections."""

from __future__ import annotations

import importlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from clock import Clock
from conftest import account_connection_ids, account_ids_once
from proxy import Proxy

from pa_dbhealth import dbapi
from pa_dbhealth.core import line as lines
from pa_dbhealth.core import registry
from pa_dbhealth.core.errors import Kind, classify
from pa_dbhealth.dbapi import opening

pytestmark = pytest.mark.matrix_once  # no Django in it
DRIVERS = ["mysqlclient", "pymysql"]


@pytest.fixture(autouse=True)
def fresh_learning(server: Any) -> Iterator[None]:
    """Each test learns the server's timeout and cap afresh, and leaves no line behind."""
    opening.timeouts.forget()
    yield
    opening.timeouts.forget()
    lines.forget(registry.server_key("mysql", server.host, server.port), server.user)


@pytest.fixture
def table(admin: Any, server: Any) -> Iterator[Callable[[], int]]:
    """An empty table of the account's database; returns how many rows it has."""
    admin.execute("CREATE TABLE IF NOT EXISTS dbapi_writes (v INT)")
    admin.execute("DELETE FROM dbapi_writes")

    def rows() -> int:
        admin.execute("SELECT COUNT(*) FROM dbapi_writes")
        return int(admin.fetchone()[0])

    yield rows
    admin.execute("DROP TABLE dbapi_writes")


def params(server: Any, **changed: Any) -> dict[str, Any]:
    return {
        "host": server.host,
        "port": server.port,
        "user": server.user,
        "password": server.password,
        "database": server.database,
        **changed,
    }


def driver_module(driver: str) -> Any:
    return importlib.import_module(opening.DRIVERS[driver])


def connection_id(conn: dbapi.Connection) -> int:
    with conn.cursor() as cursor:
        cursor.execute("SELECT CONNECTION_ID()")
        return int(cursor.fetchone()[0])


@pytest.mark.parametrize("driver", DRIVERS)
def test_an_idle_kill_between_statements_in_autocommit(
    driver: str, server: Any, admin: Any, wait_timeout: Callable[[int], None]
) -> None:
    wait_timeout(1)
    with dbapi.connect(driver=driver, timeout_margin=0, **params(server)) as conn:
        conn.autocommit(True)
        first = connection_id(conn)
        account_ids_once(admin, lambda ids: first not in ids)  # the server closed it
        assert first not in account_connection_ids(admin)
        second = connection_id(conn)  # works, on a new connection
        assert second != first
        assert account_connection_ids(admin) == [second]
    account_ids_once(admin, lambda ids: not ids)
    assert account_connection_ids(admin) == []


@pytest.mark.parametrize("driver", DRIVERS)
def test_an_idle_kill_inside_a_transaction_is_an_error_not_a_half_commit(
    driver: str,
    server: Any,
    admin: Any,
    wait_timeout: Callable[[int], None],
    table: Callable[[], int],
) -> None:
    wait_timeout(1)
    with dbapi.connect(driver=driver, timeout_margin=0, **params(server)) as conn:
        cursor = conn.cursor()
        cursor.execute("INSERT INTO dbapi_writes (v) VALUES (1)")
        first = conn.raw.thread_id()
        account_ids_once(admin, lambda ids: first not in ids)
        with pytest.raises(dbapi.TransactionLost, match="rolled the transaction back"):
            cursor.execute("INSERT INTO dbapi_writes (v) VALUES (2)")
        with pytest.raises(dbapi.TransactionLost):
            conn.commit()
        conn.rollback()
        conn.rollback()  # nothing left to roll back: no error
        conn.commit()
        assert table() == 0  # neither half was written
        cursor.execute("INSERT INTO dbapi_writes (v) VALUES (3)")  # a new transaction
        conn.commit()
    assert table() == 1


def test_a_connection_idle_past_the_timeout_is_replaced_only_outside_a_transaction(
    server: Any, admin: Any, clock: Clock, table: Callable[[], int]
) -> None:
    """The server's own timeout (300 s) has not dropped it, but it is stale by the rule
    (idle longer than 300 - 20 s): replaced before the next statement, except inside a
    transaction, where it is used as it is."""
    with dbapi.connect(**params(server)) as conn:
        cursor = conn.cursor()
        first = connection_id(conn)
        conn.commit()
        clock.advance(281)
        second = connection_id(conn)
        assert second != first
        account_ids_once(admin, lambda ids: first not in ids)
        assert account_connection_ids(admin) == [second]
        cursor.execute("INSERT INTO dbapi_writes (v) VALUES (1)")  # a transaction opens
        clock.advance(281)
        cursor.execute("INSERT INTO dbapi_writes (v) VALUES (2)")  # the same connection
        assert connection_id(conn) == second
        conn.commit()
    assert table() == 2


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_write_whose_answer_is_lost_is_raised_not_run_again(
    driver: str, server: Any, proxy: Proxy, table: Callable[[], int]
) -> None:
    with dbapi.connect(driver=driver, **params(server, host=proxy.host, port=proxy.port)) as conn:
        conn.autocommit(True)
        cursor = conn.cursor()
        proxy.delay(0.4)  # the INSERT reaches the server at 0.4 s, its answer would at 0.8 s
        threading.Timer(0.6, proxy.cut).start()
        with pytest.raises(driver_module(driver).OperationalError) as raised:
            cursor.execute("INSERT INTO dbapi_writes (v) VALUES (1)")
        assert classify(raised.value).kind is Kind.LOST
        assert classify(raised.value).code == 2013
        assert table() == 1  # written once, by the server, and never again
        proxy.heal()
        cursor.execute("SELECT 1")  # the next statement gets a new connection
        assert cursor.fetchone()[0] == 1
    assert table() == 1


def test_at_a_full_cap_the_connect_waits_then_raises_the_drivers_error(
    server: Any, raw_connections: Callable[[int], list[Any]]
) -> None:
    raw_connections(3)
    started = time.monotonic()
    with pytest.raises(driver_module("mysqlclient").OperationalError) as e:
        dbapi.connect(connect_retry=0.5, **params(server))
    assert time.monotonic() - started >= 0.5
    assert classify(e.value).code == 1226


def test_at_a_full_cap_the_connect_waits_for_a_free_slot(
    server: Any, raw_connections: Callable[[int], list[Any]]
) -> None:
    held = raw_connections(3)
    threading.Timer(0.3, held[0].close).start()
    started = time.monotonic()
    with dbapi.connect(connect_retry=5, **params(server)) as conn:
        assert time.monotonic() - started >= 0.25
        assert connection_id(conn) > 0


def test_the_connection_is_in_the_registry_while_open(server: Any) -> None:
    where = registry.directory(None)
    key = registry.server_key("mysql", server.host, server.port)
    url = f"mysql://{server.user}:{server.password}@{server.host}:{server.port}/{server.database}"
    with dbapi.connect(url) as conn:
        conn_id = conn.raw.thread_id()
        (holder,) = registry.read(where).holders(key, server.user)
        assert holder.connection.id == conn_id
        assert holder.process.pid == os.getpid()
        assert holder.connection.caller is not None and "test_dbapi.py" in holder.connection.caller
    assert registry.read(where).holders(key, server.user) == []


def test_an_error_that_is_not_a_lost_connection_keeps_it(server: Any) -> None:
    with dbapi.connect(**params(server)) as conn:
        cursor = conn.cursor()
        first = connection_id(conn)
        with pytest.raises(Exception, match="1064"):
            cursor.execute("SELEC 1")
        assert connection_id(conn) == first


def test_bad_arguments_are_one_line_errors() -> None:
    with pytest.raises(ValueError, match="unknown driver 'oracle'"):
        dbapi.connect("mysql://a@b/c", driver="oracle")
    with pytest.raises(ValueError, match="not postgresql"):
        dbapi.connect("postgresql://a@b/c")
    with pytest.raises(ValueError, match="not both"):
        dbapi.connect("mysql://a@b/c", host="b")


def test_the_recipe_that_runs_the_query_again_writes_twice(
    server: Any, proxy: Proxy, table: Callable[[], int]
) -> None:
    """What docs/raw-scripts.md warns of: reconnecting on OperationalError and running the
    statement again, as the host's help page suggests, writes a row twice when only the
    answer was lost."""
    import MySQLdb

    through = params(server, host=proxy.host, port=proxy.port)
    conn = MySQLdb.connect(**through, autocommit=True)
    insert = "INSERT INTO dbapi_writes (v) VALUES (1)"
    proxy.delay(0.4)
    threading.Timer(0.6, proxy.cut).start()
    try:
        conn.cursor().execute(insert)
    except MySQLdb.OperationalError:
        proxy.heal()
        conn = MySQLdb.connect(**through, autocommit=True)
        conn.cursor().execute(insert)
    conn.close()
    assert table() == 2
