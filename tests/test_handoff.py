"""Handing a connection to a thread waiting for the cap, against the real capped server.

The receiving thread is made to wait long between attempts (a slot freed by a real close
is then only noticed at its deadline), so a prompt connect can only be a handoff and each
test knows which connection it got from the server's own ids.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connections, transaction
from django.db.utils import DatabaseError
from django.test import override_settings
from holders import Holder

from pa_dbhealth import hygiene, tracker
from pa_dbhealth.backends.mysql.base import DatabaseWrapper
from pa_dbhealth.core import handoff, retry

ALIAS = "handoff"
# Handoff is how threads of one process wait when the host's line is off (or unavailable):
# with the line, a closing connection's token goes to whoever waited longest, anywhere.
NO_LINE = {"LINE": False}

pytestmark = pytest.mark.usefixtures("unblocked_db", "without_the_line")


@pytest.fixture
def without_the_line() -> Iterator[None]:
    with override_settings(PA_DBHEALTH=NO_LINE):
        yield


@pytest.fixture
def settings_of(server: Any) -> Callable[..., dict[str, Any]]:
    def make(**overrides: Any) -> dict[str, Any]:
        settings_dict = {**server.database_settings(engine="pa_dbhealth.backends.mysql")}
        settings_dict.update(overrides)
        return dict(connections.configure_settings({"default": settings_dict})["default"])

    return make


@pytest.fixture
def slow_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Waits of 20-30 s between attempts: only a handoff or the deadline ends one."""
    monkeypatch.setattr(retry, "FIRST_DELAY", 30.0)
    monkeypatch.setattr(retry, "MAX_DELAY", 30.0)


class Receiver(Holder):
    """Connects in its own thread (connections belong to threads), reports what it got."""

    def __init__(self, settings_dict: dict[str, Any], *statements: str) -> None:
        super().__init__(opener=self.connect, closer=self.close)
        self.settings_dict = settings_dict
        self.statements = statements  # run once connected, as a request would
        self.waited = 0.0
        self.wrapper: DatabaseWrapper | None = None

    def connect(self) -> int:
        self.wrapper = DatabaseWrapper(self.settings_dict, alias=ALIAS)
        started = time.monotonic()
        self.wrapper.ensure_connection()
        self.waited = time.monotonic() - started
        with self.wrapper.cursor() as cursor:
            cursor.execute("SELECT CONNECTION_ID()")
            got = int(cursor.fetchone()[0])
            for statement in self.statements:
                cursor.execute(statement)
            return got

    def close(self) -> None:
        if self.wrapper is not None:
            self.wrapper.close()

    @property
    def got(self) -> int | None:
        got: int | None = self.value
        return got

    def result(self) -> int:
        got: int = self.release()
        return got


def start_waiting(receiver: Receiver) -> Receiver:
    """Start ``receiver`` and return once it waits in the room (its connect was refused)."""
    receiver.start()
    deadline = time.monotonic() + 5
    while handoff.room(ALIAS).waiting < 1:
        assert time.monotonic() < deadline, "the receiver never waited for the cap"
        time.sleep(0.005)
    return receiver


@pytest.fixture
def giver(settings_of: Callable[..., dict[str, Any]]) -> Iterator[DatabaseWrapper]:
    """A connected wrapper of this thread, the one to hand its connection over."""
    wrapper = DatabaseWrapper(settings_of(), alias=ALIAS)
    connections[ALIAS] = wrapper  # so that transaction.atomic(using=ALIAS) finds it
    wrapper.ensure_connection()
    yield wrapper
    wrapper.close()
    del connections[ALIAS]


def handoffs() -> int:
    return int(tracker.figures()["connect_handoffs"])


def given_id(wrapper: DatabaseWrapper) -> int:
    return int(wrapper.connection.thread_id())


@pytest.mark.usefixtures("slow_retries")
def test_a_closed_connection_goes_to_the_waiting_thread(
    giver: DatabaseWrapper,
    settings_of: Callable[..., dict[str, Any]],
    raw_connections: Any,
    settled_ids: Callable[[Callable[[list[int]], bool]], list[int]],
) -> None:
    raw_connections(2)  # with the giver's, the cap of 3 is full
    before, given = handoffs(), given_id(giver)
    receiver = start_waiting(Receiver(settings_of()))
    giver.close()

    assert receiver.result() == given  # the same server connection, not a new one
    assert receiver.waited < 10  # woken by the handoff, long before its next attempt (20-30 s)
    assert giver.connection is None
    assert handoffs() == before + 1
    assert given not in settled_ids(
        lambda ids: given not in ids
    )  # the receiver's close was a real one: nobody waited
    assert handoff.room(ALIAS).waiting == 0


@pytest.mark.usefixtures("slow_retries")
@pytest.mark.parametrize(
    "state", ["atomic block", "error occurred", "turned off"], ids=lambda state: state
)
def test_a_connection_not_fit_to_pass_on_is_closed(
    state: str,
    giver: DatabaseWrapper,
    settings_of: Callable[..., dict[str, Any]],
    raw_connections: Any,
    settled_ids: Callable[[Callable[[list[int]], bool]], list[int]],
) -> None:
    raw_connections(2)
    before, given = handoffs(), given_id(giver)
    with override_settings(PA_DBHEALTH={**NO_LINE, "CONNECT_RETRY": 1.0}):
        receiver = start_waiting(Receiver(settings_of()))
    if state == "atomic block":
        with transaction.atomic(using=ALIAS):
            giver.close()
            assert given not in settled_ids(
                lambda ids: given not in ids
            )  # closed, not handed into someone's block
    else:
        if state == "error occurred":
            with pytest.raises(DatabaseError), giver.cursor() as cursor:
                cursor.execute("SELECT * FROM no_such_table")
        # Turned off after the receiver started waiting: the closing side checks it too.
        with override_settings(PA_DBHEALTH={**NO_LINE, "HANDOFF": state != "turned off"}):
            giver.close()
        assert given not in settled_ids(lambda ids: given not in ids)

    got = receiver.result()  # at its deadline, into the slot the real close freed
    assert got != given
    assert receiver.waited >= 0.9
    assert handoffs() == before


@pytest.fixture
def writes(admin: Any) -> Iterator[Callable[[], list[str]]]:
    """A table of the test's own in the sandbox's database; returns a reader of its rows."""
    admin.execute("CREATE TABLE handoff_writes (who VARCHAR(10)) ENGINE=InnoDB")

    def rows() -> list[str]:
        admin.execute("SELECT who FROM handoff_writes ORDER BY who")
        return [row[0] for row in admin.fetchall()]

    yield rows
    admin.execute("DROP TABLE handoff_writes")


@pytest.mark.usefixtures("slow_retries")
def test_a_transaction_left_open_by_raw_sql_is_never_handed_over(
    giver: DatabaseWrapper,
    settings_of: Callable[..., dict[str, Any]],
    raw_connections: Any,
    writes: Callable[[], list[str]],
) -> None:
    """A request opens a transaction through a raw cursor and crashes before COMMIT; the
    request waiting for the cap must not write into that transaction: its write would be
    answered and then vanish with the rollback."""
    raw_connections(2)
    given = given_id(giver)
    with override_settings(PA_DBHEALTH={**NO_LINE, "CONNECT_RETRY": 1.0}):
        receiver = start_waiting(
            Receiver(settings_of(), "INSERT INTO handoff_writes VALUES ('waiter')")
        )
    cursor = giver.connection.cursor()
    cursor.execute("START TRANSACTION")  # Django's autocommit flag still says True
    cursor.execute("INSERT INTO handoff_writes VALUES ('crashed')")
    giver.close()  # never committed

    assert receiver.result() != given
    assert writes() == ["waiter"]


@pytest.mark.usefixtures("slow_retries")
@pytest.mark.parametrize("how", ["killed by the server", "error washed out by a ping"])
def test_a_dead_or_erred_connection_is_never_handed_over(
    how: str,
    giver: DatabaseWrapper,
    settings_of: Callable[..., dict[str, Any]],
    raw_connections: Any,
    admin: Any,
    settled_ids: Callable[[Callable[[list[int]], bool]], list[int]],
) -> None:
    raw_connections(2)
    before, given = handoffs(), given_id(giver)
    with override_settings(PA_DBHEALTH={**NO_LINE, "CONNECT_RETRY": 1.0}):
        receiver = start_waiting(Receiver(settings_of()))
    if how == "killed by the server":
        admin.execute("KILL CONNECTION %s", [given])
        settled_ids(lambda ids: given not in ids)
    else:
        with pytest.raises(DatabaseError), giver.cursor() as cursor:
            cursor.execute("SET @left_behind = 1")
            cursor.execute("SELECT * FROM no_such_table")
        hygiene.stale_reason(giver)  # the ping answers, so errors_occurred is cleared
        assert not giver.errors_occurred
    giver.close()

    assert receiver.result() != given
    assert handoffs() == before


def test_a_connection_is_passed_on_at_most_max_handoffs_times(
    monkeypatch: pytest.MonkeyPatch,
    giver: DatabaseWrapper,
    settings_of: Callable[..., dict[str, Any]],
    raw_connections: Any,
    settled_ids: Callable[[Callable[[list[int]], bool]], list[int]],
) -> None:
    monkeypatch.setattr(retry, "FIRST_DELAY", 30.0)
    monkeypatch.setattr(retry, "MAX_DELAY", 30.0)
    monkeypatch.setattr(handoff, "MAX_HANDOFFS", 1)
    raw_connections(2)
    given = given_id(giver)
    first = start_waiting(Receiver(settings_of()))
    giver.close()
    deadline = time.monotonic() + 5
    while first.got is None:  # the first receiver has it and uses it
        assert time.monotonic() < deadline
        time.sleep(0.005)
    assert first.got == given
    with override_settings(PA_DBHEALTH={**NO_LINE, "CONNECT_RETRY": 1.0}):
        second = start_waiting(Receiver(settings_of()))
    assert first.result() == given  # it closes: handed over once already, so for real
    assert given not in settled_ids(lambda ids: given not in ids)
    assert second.result() != given


def test_a_waiter_with_other_settings_does_not_use_it(
    giver: DatabaseWrapper,
    settings_of: Callable[..., dict[str, Any]],
    raw_connections: Any,
    settled_ids: Callable[[Callable[[list[int]], bool]], list[int]],
    slow_retries: None,
) -> None:
    raw_connections(2)
    given = given_id(giver)
    other = settings_of(OPTIONS={"init_command": "SET @pa_dbhealth_test = 1"})
    receiver = start_waiting(Receiver(other))
    giver.close()

    got = receiver.result()
    # It closed the one handed to it, which freed the slot, and connected at once.
    assert got != given
    assert receiver.waited < 10  # not its next attempt, 20-30 s away
    assert given not in settled_ids(lambda ids: given not in ids)


def test_nothing_handed_in_is_left_behind() -> None:
    """Many waiters with short waits, many offers: each offer taken is taken once."""
    room = handoff.WaitingRoom()
    taken: list[Any] = []
    offered: list[Any] = []
    lock = threading.Lock()
    stop = time.monotonic() + 0.5

    def wait() -> None:
        while time.monotonic() < stop:
            got = room.wait(0.001)
            if got is not None:
                with lock:
                    taken.append(got.raw)

    def offer(base: int) -> None:
        n = 0
        while time.monotonic() < stop:
            n += 1
            item = handoff.Handed(raw=(base, n), opened_with=None, handoffs=1)
            if room.offer(item):
                with lock:
                    offered.append(item.raw)

    threads = [threading.Thread(target=wait) for _ in range(4)]
    threads += [threading.Thread(target=offer, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert offered  # the test did exercise handoffs
    assert sorted(taken) == sorted(offered)
    assert room.wait(0) is None
    assert room.waiting == 0
    assert not room.offer(handoff.Handed(raw=None, opened_with=None, handoffs=1))
