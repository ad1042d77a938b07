"""Handing a connection to a thread waiting for the cap, against the real capped server,
in both faces (``handoff_faces``): the Django backend and an ``install()``-ed engine.

The receiving thread is made to wait long between attempts (a slot freed by a real close
is then only noticed at its deadline), so a prompt connect can only be a handoff and each
test knows which connection it got from the server's own ids. The Django backend's own
rules (atomic block, error, MAX_HANDOFFS, other settings): ``test_handoff_django``.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.test import override_settings
from faces import DJANGO
from handoff_faces import NO_LINE, DjangoGiver, DjangoHandoff, EngineHandoff, Settled, start_waiting

from pa_dbhealth.core import handoff, registry

pytestmark = pytest.mark.usefixtures("unblocked_db", "without_the_line")

Handoff = DjangoHandoff | EngineHandoff


@pytest.fixture
def handing(
    face: str, settings_of: Callable[..., dict[str, Any]], make_engine: Callable[..., Any]
) -> Iterator[Callable[..., Handoff]]:
    """``handing(**options)``: the face's handoff with these PA_DBHEALTH options (the line
    off): Django's settings for the test, or a NullPool engine installed with them."""
    with contextlib.ExitStack() as stack:

        def make(**options: Any) -> Handoff:
            if face == DJANGO:
                stack.enter_context(override_settings(PA_DBHEALTH={**NO_LINE, **options}))
                return DjangoHandoff(settings_of())
            from sqlalchemy.pool import NullPool

            from pa_dbhealth.sqlalchemy import install

            engine = make_engine(poolclass=NullPool, pool_reset_on_return=None)
            return EngineHandoff(install(engine, {**NO_LINE, **options}))

        yield make


# --- the rules of both faces ----------------------------------------------------------------


@pytest.mark.usefixtures("slow_retries")
def test_a_closed_connection_goes_to_the_waiting_thread(
    face: str, handing: Callable[..., Handoff], raw_connections: Any, settled_ids: Settled
) -> None:
    site = handing(CONNECT_RETRY=10.0)
    giver = site.giver()
    raw_connections(2)  # with the giver's, the cap of 3 is full
    before = site.handoffs()
    receiver = start_waiting(site.receiver(), site.room())
    giver.close()

    assert receiver.result() == giver.id  # the same server connection, not a new one
    assert receiver.waited < 10  # woken by the handoff, long before its next attempt (20-30 s)
    if isinstance(giver, DjangoGiver):
        assert giver.wrapper.connection is None
    assert site.handoffs() == before + 1
    # The receiver's close was a real one: nobody waited.
    assert giver.id not in settled_ids(lambda ids: giver.id not in ids)
    assert site.room().waiting == 0
    giver.forget()


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
    handing: Callable[..., Handoff], raw_connections: Any, writes: Callable[[], list[str]]
) -> None:
    """A request opens a transaction through a raw cursor and crashes before COMMIT; the
    request waiting for the cap must not write into that transaction: its write would be
    answered and then vanish with the rollback."""
    site = handing(CONNECT_RETRY=1.0)
    giver = site.giver()
    raw_connections(2)
    before = site.handoffs()
    receiver = start_waiting(
        site.receiver("INSERT INTO handoff_writes VALUES ('waiter')"), site.room()
    )
    cursor = giver.raw.cursor()
    cursor.execute("START TRANSACTION")  # Django's autocommit flag still says True
    cursor.execute("INSERT INTO handoff_writes VALUES ('crashed')")
    cursor.close()
    giver.close()  # never committed

    assert receiver.result() != giver.id
    assert writes() == ["waiter"]
    assert site.handoffs() == before
    giver.forget()


def test_handoff_turned_off_means_the_waiter_polls_the_server(
    handing: Callable[..., Handoff], raw_connections: Any, settled_ids: Settled
) -> None:
    site = handing(CONNECT_RETRY=10.0, HANDOFF=False)
    giver = site.giver()
    raw_connections(2)
    before = site.handoffs()
    receiver = site.receiver()
    receiver.start()
    time.sleep(0.3)
    assert site.room().waiting == 0  # it polls the server, it does not wait for a handoff
    giver.close()
    assert giver.id not in settled_ids(lambda ids: giver.id not in ids)  # closed for real
    assert receiver.result() != giver.id
    assert site.handoffs() == before
    giver.forget()


@pytest.mark.usefixtures("slow_retries")
def test_a_connection_the_server_killed_is_never_handed_over(
    handing: Callable[..., Handoff], raw_connections: Any, admin: Any, settled_ids: Settled
) -> None:
    site = handing(CONNECT_RETRY=1.0)
    giver = site.giver()
    raw_connections(2)
    before = site.handoffs()
    receiver = start_waiting(site.receiver(), site.room())
    admin.execute("KILL CONNECTION %s", [giver.id])
    settled_ids(lambda ids: giver.id not in ids)
    giver.close()

    assert receiver.result() != giver.id
    assert site.handoffs() == before
    giver.forget()


@pytest.mark.usefixtures("slow_retries")
def test_a_connection_that_died_on_its_way_to_the_receiver_is_not_used(
    handing: Callable[..., Handoff],
    raw_connections: Any,
    admin: Any,
    settled_ids: Settled,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Handed over alive, killed before the receiver takes it: the receiver checks it again
    and connects afresh (into the slot the kill freed, at its deadline)."""
    site = handing(CONNECT_RETRY=1.0)
    giver = site.giver()
    raw_connections(2)
    before = site.handoffs()
    offered: list[int] = []
    offer = handoff.WaitingRoom.offer

    def killed_in_transit(room: handoff.WaitingRoom, handed: handoff.Handed) -> bool:
        offered.append(giver.id)
        admin.execute("KILL CONNECTION %s", [giver.id])
        settled_ids(lambda ids: giver.id not in ids)
        return offer(room, handed)

    receiver = start_waiting(site.receiver("SELECT 1"), site.room())
    monkeypatch.setattr(handoff.WaitingRoom, "offer", killed_in_transit)
    giver.close()

    got = receiver.result()  # it ran its statements: a live connection
    assert offered == [giver.id]  # it was handed over, and died on the way
    assert got != giver.id
    assert site.handoffs() == before  # not taken
    # Nor listed as held any more by this process (no pool closed it: the receiver did).
    entries = registry.read(registry.directory(None)).processes
    assert giver.id not in {c.id for p in entries if p.pid == os.getpid() for c in p.connections}
    giver.forget()


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
