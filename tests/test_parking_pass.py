"""PARK within one process: a parked connection passed straight to this process's thread at
the head of the line (no close, no connect), on the real capped server (cap 3) and the host's
real line. The server's connection ids say whether a connect happened.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import account_connection_ids
from django.test import override_settings
from test_parking import ALIAS, request, until

from pa_dbhealth.backends.mysql.base import DatabaseWrapper
from pa_dbhealth.core import line as lines
from pa_dbhealth.core import parking
from pa_dbhealth.core.passing import HEADS

PARK = {"PARK": True, "CONNECT_RETRY": 10.0}

pytestmark = pytest.mark.usefixtures("unblocked_db")


@pytest.fixture
def in_line(
    retrying_line: tuple[dict[str, Any], lines.Line], admin: Any
) -> Iterator[tuple[dict[str, Any], lines.Line]]:
    """The retrying backend's settings with PARK, the account's line (cap 3) and a table of
    writes; nothing left parked after the test."""
    admin.execute(
        "CREATE TABLE IF NOT EXISTS app.pass_writes (token INT PRIMARY KEY) ENGINE=InnoDB"
    )
    admin.execute("TRUNCATE TABLE app.pass_writes")
    with override_settings(PA_DBHEALTH=PARK):
        yield retrying_line
        parking.LOT.release_due(everything=True)
    admin.execute("DROP TABLE IF EXISTS app.pass_writes")


def hold_the_rest(line: lines.Line) -> int:
    """Take every free token, as connections of other processes would hold them; how many."""
    taken = 0
    while line.take(0):
        taken += 1
    return taken


def give_back(line: lines.Line, taken: int) -> None:
    for _ in range(taken):
        line.give_back()


def connect_in_thread(settings_dict: dict[str, Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """A thread whose request connects (and waits in the line when no token is free); what
    it got: the server's id of its connection and when it had it."""
    got: dict[str, Any] = {}

    def run() -> None:
        wrapper = DatabaseWrapper(settings_dict, alias=ALIAS)
        try:
            wrapper.ensure_connection()
            got["connected_at"] = time.monotonic()
            with wrapper.cursor() as cursor:
                cursor.execute("SELECT CONNECTION_ID()")
                got["id"] = int(cursor.fetchone()[0])
            got["unparked"] = wrapper._pa_dbhealth_unparked
            wrapper.close()
        except BaseException as exc:  # reported to the test's thread
            got["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, got


def pass_while_standing(
    settings_dict: dict[str, Any], line: lines.Line, head_settings: dict[str, Any], kill: Any = None
) -> tuple[int, dict[str, Any], float]:
    """A request holds a connection, the other tokens are held elsewhere, a thread of this
    process stands at the head of the line; then the request ends (its connection parked,
    or passed) after ``kill(its id)`` if given. The request's connection id, what the head
    got, and seconds from the end of the request to the head's connection."""
    ending = DatabaseWrapper(settings_dict, alias=ALIAS)
    ending.ensure_connection()
    ending_id = int(ending.connection.thread_id())
    taken = hold_the_rest(line)
    assert taken == 2
    thread, got = connect_in_thread(head_settings)
    until(lambda: line.waiting >= 1)
    if kill is not None:
        kill(ending_id)
    ended = time.monotonic()
    ending.close()
    thread.join(10)
    give_back(line, taken)
    assert "error" not in got, got.get("error")
    return ending_id, got, got["connected_at"] - ended


def test_a_request_passes_its_connection_to_this_process_head(
    in_line: tuple[dict[str, Any], lines.Line], admin: Any
) -> None:
    settings_dict, line = in_line
    passed_before = HEADS.passed
    ending_id, got, seconds = pass_while_standing(settings_dict, line, settings_dict)
    assert got["id"] == ending_id, "the head connected instead of taking the passed one"
    assert got["unparked"]  # set up when it was opened: not set up again
    assert HEADS.passed == passed_before + 1
    assert seconds < 0.1, f"passed after {seconds * 1000:.1f} ms"
    until(lambda: line.free + parking.LOT.count(ALIAS) == 3)
    until(lambda: len(account_connection_ids(admin)) == parking.LOT.count(ALIAS))


def test_a_passed_connection_killed_meanwhile_is_not_used(
    in_line: tuple[dict[str, Any], lines.Line], admin: Any
) -> None:
    settings_dict, line = in_line

    def kill(connection_id: int) -> None:
        admin.execute("KILL %s", [connection_id])
        until(lambda: connection_id not in account_connection_ids(admin))

    ending_id, got, _ = pass_while_standing(settings_dict, line, settings_dict, kill)
    assert got["id"] != ending_id and not got["unparked"]
    until(lambda: line.free + parking.LOT.count(ALIAS) == 3)


def test_a_head_that_would_open_another_kind_never_takes_it(
    in_line: tuple[dict[str, Any], lines.Line], admin: Any
) -> None:
    """A passed connection carries the settings it was opened with: a head that would open
    another kind (here: another isolation level) closes it and connects."""
    settings_dict, line = in_line
    options = {**settings_dict.get("OPTIONS", {}), "isolation_level": "serializable"}
    other = {**settings_dict, "OPTIONS": options}
    ending_id, got, _ = pass_while_standing(settings_dict, line, other)
    assert got["id"] != ending_id and not got["unparked"]
    until(lambda: ending_id not in account_connection_ids(admin))
    until(lambda: line.free + parking.LOT.count(ALIAS) == 3)


def test_threads_passing_never_lose_a_write_or_leak_a_transaction(
    in_line: tuple[dict[str, Any], lines.Line], admin: Any
) -> None:
    """Eight threads on a cap of 3, random requests: committed writes, rolled back ones,
    transactions left open by an error, random delays. Every committed write is there,
    no rolled back one is, no request starts inside another's transaction, and no
    connection is used by two threads at once; the pass did happen."""
    settings_dict, line = in_line
    in_use: set[int] = set()
    lock = threading.Lock()
    committed: list[int] = []
    problems: list[str] = []
    passed_before = HEADS.passed

    def request_once(chance: random.Random, token: int) -> None:
        wrapper = DatabaseWrapper(settings_dict, alias=ALIAS)
        try:
            with wrapper.cursor() as cursor:
                cursor.execute("SELECT CONNECTION_ID(), @@in_transaction, @@autocommit")
                used, in_transaction, autocommit = cursor.fetchone()
                with lock:
                    if used in in_use:
                        problems.append(f"connection {used} used by two threads")
                    in_use.add(used)
                if in_transaction or not autocommit:
                    problems.append(f"connection {used} came inside a transaction")
                mode = chance.choice(("commit", "commit", "rollback", "error"))
                cursor.execute("START TRANSACTION")
                cursor.execute("INSERT INTO app.pass_writes VALUES (%s)", [token])
                time.sleep(chance.choice((0, 0.001, 0.005)))
                if mode == "commit":
                    cursor.execute("COMMIT")
                    committed.append(token)
                elif mode == "rollback":
                    cursor.execute("ROLLBACK")
                else:  # left open by an error: the connection must not be reused
                    wrapper.errors_occurred = True
                with lock:
                    in_use.discard(used)
        finally:
            wrapper.close()

    def worker(number: int) -> None:
        chance = random.Random(number)
        try:
            for round_ in range(30):
                request_once(chance, number * 1000 + round_)
                time.sleep(chance.choice((0, 0, 0.002)))
        except BaseException as exc:  # reported to the test's thread
            problems.append(repr(exc))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    parking.LOT.release_due(everything=True)
    until(lambda: line.free == 3)
    admin.execute("SELECT token FROM app.pass_writes ORDER BY token")
    assert [row[0] for row in admin.fetchall()] == sorted(committed)
    assert not problems, problems[:5]
    assert HEADS.passed > passed_before, "no connection was passed: the test tested nothing"


def test_one_process_of_the_host_counts_the_account(
    in_line: tuple[dict[str, Any], lines.Line],
) -> None:
    """The count of the account (a console's slot) is made by one process of the host: the
    one that took the line's counter role while it had something parked; it leaves the
    role when nothing is parked any more (the kernel frees it if the process dies)."""
    settings_dict, line = in_line
    request(settings_dict)  # parked: the releaser counts the account at its first round
    until(lambda: role_taken(line))
    parking.LOT.release_due(everything=True)
    until(lambda: not role_taken(line))  # the releaser left it as it ended


def role_taken(line: lines.Line) -> bool:
    """Whether a process holds the line's counter role (trying to take it, and giving it
    back at once when it was free)."""
    if line.become_counter():
        line.leave_counter()
        return False
    return True
