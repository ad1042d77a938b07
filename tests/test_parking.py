"""PARK: a request's connection kept for the next request while nobody waits, against the
real capped server (cap 3) and the host's real line.

What the server says is the truth here: connection ids (the same id means no connect) and
the account's connections counted by the admin account.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import account_connection_ids
from django.db import connections, transaction
from django.db.utils import DatabaseError
from django.test import override_settings

from pa_dbhealth.backends.mysql.base import DatabaseWrapper
from pa_dbhealth.core import line as lines
from pa_dbhealth.core import parking, releaser

ALIAS = "parking"
PARK = {"PARK": True, "CONNECT_RETRY": 10.0}

pytestmark = pytest.mark.usefixtures("unblocked_db")


@pytest.fixture
def in_line(
    retrying_line: tuple[dict[str, Any], lines.Line],
) -> Iterator[tuple[dict[str, Any], lines.Line]]:
    """The retrying backend's settings with PARK, and the account's line (cap 3); nothing
    is left parked after the test."""
    with override_settings(PA_DBHEALTH=PARK):
        yield retrying_line
        parking.LOT.release_due(everything=True)


def request(settings_dict: dict[str, Any], *statements: str) -> int:
    """One request of a site with CONN_MAX_AGE = 0: connect, query, close; the server's id
    of the connection it used."""
    wrapper = DatabaseWrapper(settings_dict, alias=ALIAS)
    try:
        with wrapper.cursor() as cursor:
            cursor.execute("SELECT CONNECTION_ID()")
            used = int(cursor.fetchone()[0])
            for statement in statements:
                cursor.execute(statement)
        return used
    finally:
        wrapper.close()


def console_connects(raw_connections: Any, give_up_after: float = 5.0) -> tuple[float, int]:
    """A console (a raw connection outside the line, the server's 1226 its only answer)
    tried every 5 ms until it gets in: seconds it waited, and how many refusals."""
    started, refused = time.monotonic(), 0
    while True:
        try:
            raw_connections(1)
            return time.monotonic() - started, refused
        except Exception as exc:
            assert "1226" in str(exc), exc
            refused += 1
            assert time.monotonic() - started < give_up_after, "the console never got in"
            time.sleep(0.005)


def counts_in(seconds: float, monkeypatch: pytest.MonkeyPatch) -> int:
    """How many times this process counts the account in ``seconds``."""
    made = [0]
    why_give_up = parking.LOT._counts.why_give_up

    def counted(line: lines.Line, connection: Any) -> str | None:
        made[0] += 1
        return why_give_up(line, connection)

    monkeypatch.setattr(parking.LOT._counts, "why_give_up", counted)
    time.sleep(seconds)
    monkeypatch.setattr(parking.LOT._counts, "why_give_up", why_give_up)
    return made[0]


def until(condition: Callable[[], bool], timeout: float = 10.0) -> float:
    """Seconds until ``condition()`` held; fails after ``timeout``."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, "it never happened"
        time.sleep(0.001)
    return time.monotonic() - started


def test_the_next_request_reuses_the_parked_connection(
    in_line: tuple[dict[str, Any], lines.Line], admin: Any
) -> None:
    settings_dict, line = in_line
    first = request(settings_dict)
    assert parking.LOT.count(ALIAS) == 1
    assert account_connection_ids(admin) == [first]  # still open on the server
    assert line.free == 2  # with its token
    assert [request(settings_dict) for _ in range(5)] == [first] * 5
    assert parking.LOT.count(ALIAS) == 1


def test_without_park_the_connection_is_closed(
    in_line: tuple[dict[str, Any], lines.Line], admin: Any
) -> None:
    settings_dict, line = in_line
    with override_settings(PA_DBHEALTH={}):
        request(settings_dict)
        request(settings_dict)
    assert parking.LOT.count(ALIAS) == 0
    assert line.free == 3


def test_given_up_the_moment_someone_stands_in_the_line(
    in_line: tuple[dict[str, Any], lines.Line], admin: Any
) -> None:
    settings_dict, line = in_line
    parked_id = request(settings_dict)
    request(settings_dict)
    assert line.take_head(0)  # a connect of this host stands in the line
    try:
        waited = until(lambda: parking.LOT.count(ALIAS) == 0)
        until(lambda: line.free == 3)  # its token goes back once the connection is closed
    finally:
        line.leave_head()
    assert parked_id not in account_connection_ids(admin)
    assert waited < 1.0, f"released after {waited * 1000:.1f} ms"


def parked_two(settings_dict: dict[str, Any]) -> list[int]:
    """Two requests at once, both parked at their end: the server's ids."""
    wrappers = [DatabaseWrapper(settings_dict, alias=ALIAS) for _ in range(2)]
    for wrapper in wrappers:
        wrapper.ensure_connection()
    ids = [int(wrapper.connection.thread_id()) for wrapper in wrappers]
    for wrapper in wrappers:
        wrapper.close()
    return ids


def test_a_waiter_of_another_process_gets_the_parked_slot(
    in_line: tuple[dict[str, Any], lines.Line], processes: Any
) -> None:
    """Two connections parked, the free token held elsewhere in the line: another
    process's connect waits in the line, a parked connection is given up, it gets in."""
    settings_dict, line = in_line
    parked_two(settings_dict)
    with override_settings(PA_DBHEALTH={}):
        holder = DatabaseWrapper(settings_dict, alias="holder")
        holder.ensure_connection()
    try:
        assert line.free == 0 and parking.LOT.count(ALIAS) == 2
        code = (
            "import time\n"
            "from django.db import connection\n"
            "started = time.monotonic()\n"
            "connection.ensure_connection()\n"
            "print(time.monotonic() - started)\n"
        )
        databases = {"default": {**settings_dict, "TEST": {}}}
        out, err, status = processes.python(
            code, settings={"PA_DBHEALTH": PARK, "DATABASES": databases}
        )
        assert status == 0, err
        assert float(out.split()[-1]) < 2.0
        # One given up for it (or one given back meanwhile: the site idled, no slot free).
        assert parking.LOT.count(ALIAS) <= 1, err
    finally:
        holder.close()


def test_a_head_the_server_refuses_gets_a_parked_slot(
    in_line: tuple[dict[str, Any], lines.Line], raw_connections: Any
) -> None:
    """A slot held outside the line (a scheduled task): the line has a free token the
    server has not. The site gives up what it parked to leave the server a free slot; the
    connect that takes the line's free token gets in at once."""
    settings_dict, line = in_line
    raw_connections(1)
    parked_two(settings_dict)
    until(lambda: parking.LOT.count(ALIAS) == 1)  # the account was full, held outside
    with override_settings(PA_DBHEALTH={"CONNECT_RETRY": 10.0}):
        waiter = DatabaseWrapper(settings_dict, alias="waiter")
        started = time.monotonic()
        waiter.ensure_connection()
    try:
        waited = time.monotonic() - started
        assert waited < 1.0, f"waited {waited * 1000:.0f} ms"
    finally:
        waiter.close()
    request(settings_dict)
    until(lambda: line.free + parking.LOT.count(ALIAS) >= 2)


def test_a_console_at_an_idle_site_gets_a_slot(
    in_line: tuple[dict[str, Any], lines.Line], raw_connections: Any, admin: Any
) -> None:
    """The site idles with two connections parked and one free slot; a scheduled task
    takes that slot outside the line. A console that connects next (outside the line too,
    the server's 1226 its only answer) gets in within CHECK_INTERVAL and a little: the
    site counts the account on a parked connection and gives one up."""
    settings_dict, _ = in_line
    parked_two(settings_dict)
    assert parking.LOT.count(ALIAS) == 2
    raw_connections(1)  # the scheduled task
    waited, _ = console_connects(raw_connections)
    assert waited < releaser.CHECK_INTERVAL + 0.25, f"the console waited {waited * 1000:.0f} ms"
    assert parking.LOT.count(ALIAS) <= 1
    until(lambda: len(account_connection_ids(admin)) == 2 + parking.LOT.count(ALIAS))


@pytest.mark.parametrize(
    "statement",
    [
        "START TRANSACTION",  # a transaction left open with raw SQL
        "SET autocommit = 0",  # autocommit changed behind Django's back
    ],
)
def test_never_parked_unless_as_good_as_new(
    in_line: tuple[dict[str, Any], lines.Line], statement: str, admin: Any
) -> None:
    settings_dict, line = in_line
    used = request(settings_dict, statement)
    assert parking.LOT.count(ALIAS) == 0
    assert line.free == 3
    until(lambda: used not in account_connection_ids(admin))


def test_never_parked_after_an_error(in_line: tuple[dict[str, Any], lines.Line]) -> None:
    settings_dict, line = in_line
    with pytest.raises(DatabaseError):
        request(settings_dict, "SELECT * FROM no_such_table")
    assert parking.LOT.count(ALIAS) == 0
    assert line.free == 3


def test_never_parked_inside_an_atomic_block(
    in_line: tuple[dict[str, Any], lines.Line], server: Any, temporary_alias: Any
) -> None:
    _, line = in_line
    alias = temporary_alias(ALIAS, server.database_settings(engine="pa_dbhealth.backends.mysql"))
    with transaction.atomic(using=alias):
        connections[alias].ensure_connection()
        connections[alias].close()  # Django closes it and marks the block for rollback
        assert parking.LOT.count(ALIAS) == 0
        assert line.free == 3


def test_given_up_after_the_idle_limit(
    in_line: tuple[dict[str, Any], lines.Line], wait_timeout: Callable[[int], None], admin: Any
) -> None:
    settings_dict, line = in_line
    wait_timeout(3)
    with override_settings(PA_DBHEALTH={**PARK, "TIMEOUT_MARGIN": 2}):  # idle limit: 1 s
        request(settings_dict)  # learns the timeout
        parked_id = request(settings_dict)
        parked_at = time.monotonic()
        until(lambda: parking.LOT.count(ALIAS) == 0, timeout=10)
        idle = time.monotonic() - parked_at
    assert 0.8 < idle < 5.0
    until(lambda: line.free == 3)  # its token goes back once the connection is closed
    until(lambda: parked_id not in account_connection_ids(admin))


def test_a_take_of_the_last_parked_connection_leaves_the_releaser_working(
    in_line: tuple[dict[str, Any], lines.Line],
) -> None:
    """A request takes the only connection parked for its database between two rounds of
    the releaser: the next round goes on (it raised IndexError on the emptied stack, the
    releaser thread died, and its process never gave up a parked connection again)."""
    settings_dict, line = in_line
    request(settings_dict)
    wrapper = DatabaseWrapper(settings_dict, alias=ALIAS)
    wrapper.ensure_connection()  # takes the parked one
    try:
        assert parking.LOT.count(ALIAS) == 0
        assert parking.LOT.check_server() == 0
        assert parking.LOT.release_due() == 0
    finally:
        wrapper.close()  # parked again
    assert parking.LOT.count(ALIAS) == 1
    assert line.free == 2


def test_a_dead_parked_connection_is_not_used(
    in_line: tuple[dict[str, Any], lines.Line], admin: Any
) -> None:
    settings_dict, line = in_line
    parked_id = request(settings_dict)
    admin.execute("KILL %s", [parked_id])
    until(lambda: parked_id not in account_connection_ids(admin))
    assert request(settings_dict) != parked_id
    assert line.free == 2  # the new one parked, the dead one's token back


def test_threads_never_share_a_parked_connection(
    in_line: tuple[dict[str, Any], lines.Line],
) -> None:
    """Many threads, each request takes a connection no other thread uses meanwhile: the
    server's id of a connection is held by one thread at a time."""
    settings_dict, line = in_line
    in_use: set[int] = set()
    lock = threading.Lock()
    clashes: list[int] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(40):
                wrapper = DatabaseWrapper(settings_dict, alias=ALIAS)
                try:
                    with wrapper.cursor() as cursor:
                        cursor.execute("SELECT CONNECTION_ID()")
                        used = int(cursor.fetchone()[0])
                        with lock:
                            if used in in_use:
                                clashes.append(used)
                            in_use.add(used)
                        cursor.execute("DO SLEEP(0.001)")
                        with lock:
                            in_use.discard(used)
                finally:
                    wrapper.close()
        except BaseException as exc:  # reported to the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors and not clashes
    assert line.free + parking.LOT.count(ALIAS) == 3


# --- W039: PARK where it can do nothing --------------------------------------------------


def test_park_with_the_line_off_is_a_warning() -> None:
    from pa_dbhealth.checks import check_parking

    with override_settings(PA_DBHEALTH={"PARK": True, "LINE": False}):
        messages = check_parking()
    assert [m.id for m in messages] == ["pa_dbhealth.W039"]
    assert "PA_DBHEALTH['LINE'] = False" in messages[0].msg
    assert messages[0].hint == "Remove PA_DBHEALTH['LINE'] (it defaults to True), or remove PARK."


def test_park_without_a_retrying_alias_is_a_warning(server: Any, temporary_alias: Any) -> None:
    from pa_dbhealth.checks import check_parking

    with override_settings(PA_DBHEALTH={"PARK": True}):
        found = check_parking()  # the suite's aliases use Django's own MySQL backend
        assert [m.id for m in found] == ["pa_dbhealth.W039"]
        assert "no DATABASES entry has ENGINE = 'pa_dbhealth.backends.mysql'" in found[0].msg
        temporary_alias(ALIAS, server.database_settings(engine="pa_dbhealth.backends.mysql"))
        assert check_parking() == []
    assert check_parking() == []  # PARK off: nothing to say


def test_a_forked_child_neither_uses_nor_closes_what_its_parent_parked(
    in_line: tuple[dict[str, Any], lines.Line], admin: Any
) -> None:
    settings_dict, line = in_line
    parked_id = request(settings_dict)
    child = os.fork()
    if child == 0:  # the child: nothing parked, and giving up nothing touches the parent's
        code = (
            0 if parking.LOT.count() == 0 and parking.LOT.release_due(everything=True) == 0 else 1
        )
        os._exit(code)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert line.free == 2
    assert request(settings_dict) == parked_id  # still open, still the parent's


def test_a_forked_child_neither_parks_nor_hands_over_what_it_inherited(
    in_line: tuple[dict[str, Any], lines.Line],
) -> None:
    """A connection open in the parent as it forks (a uWSGI master that connected at
    import) is the parent's socket, and every sibling's: the child may close it, never
    keep it for a later request or hand it to another thread."""
    settings_dict, _ = in_line
    wrapper = DatabaseWrapper(settings_dict, alias=ALIAS)
    wrapper.ensure_connection()
    assert wrapper._as_good_as_new()  # the parent's own: reusable
    child = os.fork()
    if child == 0:
        code = 1 if wrapper._as_good_as_new() else 0
        os._exit(code)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    wrapper.close()  # in the parent: parked as usual
    assert parking.LOT.count(ALIAS) == 1
