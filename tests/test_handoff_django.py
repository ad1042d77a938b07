"""The Django backend's own handoff rules, against the real capped server: a connection in
an atomic block, after an error (even one a ping cleared), or with handoff turned off is
closed, not handed over; one is passed on at most MAX_HANDOFFS times; a waiter with other
settings does not use it. The rules of both faces: ``test_handoff``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import transaction
from django.db.utils import DatabaseError
from django.test import override_settings
from handoff_faces import (
    ALIAS,
    NO_LINE,
    DjangoGiver,
    DjangoHandoff,
    Receiver,
    Settled,
    start_waiting,
)

from pa_dbhealth import hygiene
from pa_dbhealth.core import handoff, retry

pytestmark = pytest.mark.usefixtures("unblocked_db", "without_the_line")


@pytest.fixture
def giver(settings_of: Callable[..., dict[str, Any]]) -> Iterator[DjangoGiver]:
    """A connected wrapper of this thread (the Django face), the one to hand its
    connection over."""
    made = DjangoGiver(settings_of())
    yield made
    made.forget()


def django_receiver(settings_dict: dict[str, Any], *statements: str) -> Receiver:
    receiver: Receiver = DjangoHandoff(settings_dict).receiver(*statements)
    return start_waiting(receiver, handoff.room(ALIAS))


def handoffs() -> int:
    return DjangoHandoff({}).handoffs()


@pytest.mark.usefixtures("slow_retries")
@pytest.mark.parametrize(
    "state", ["atomic block", "error occurred", "turned off"], ids=lambda state: state
)
def test_a_connection_not_fit_to_pass_on_is_closed(
    state: str,
    giver: DjangoGiver,
    settings_of: Callable[..., dict[str, Any]],
    raw_connections: Any,
    settled_ids: Settled,
) -> None:
    raw_connections(2)
    before, given = handoffs(), giver.id
    with override_settings(PA_DBHEALTH={**NO_LINE, "CONNECT_RETRY": 1.0}):
        receiver = django_receiver(settings_of())
    if state == "atomic block":
        with transaction.atomic(using=ALIAS):
            giver.close()
            assert given not in settled_ids(
                lambda ids: given not in ids
            )  # closed, not handed into someone's block
    else:
        if state == "error occurred":
            with pytest.raises(DatabaseError), giver.wrapper.cursor() as cursor:
                cursor.execute("SELECT * FROM no_such_table")
        # Turned off after the receiver started waiting: the closing side checks it too.
        with override_settings(PA_DBHEALTH={**NO_LINE, "HANDOFF": state != "turned off"}):
            giver.close()
        assert given not in settled_ids(lambda ids: given not in ids)

    got = receiver.result()  # at its deadline, into the slot the real close freed
    assert got != given
    assert receiver.waited >= 0.9
    assert handoffs() == before


@pytest.mark.usefixtures("slow_retries")
def test_an_erred_connection_is_never_handed_over_even_after_a_ping(
    giver: DjangoGiver,
    settings_of: Callable[..., dict[str, Any]],
    raw_connections: Any,
    admin: Any,
    settled_ids: Settled,
) -> None:
    raw_connections(2)
    before, given = handoffs(), giver.id
    with override_settings(PA_DBHEALTH={**NO_LINE, "CONNECT_RETRY": 1.0}):
        receiver = django_receiver(settings_of())
    with pytest.raises(DatabaseError), giver.wrapper.cursor() as cursor:
        cursor.execute("SET @left_behind = 1")
        cursor.execute("SELECT * FROM no_such_table")
    hygiene.stale_reason(giver.wrapper)  # the ping answers, so errors_occurred is cleared
    assert not giver.wrapper.errors_occurred
    giver.close()

    assert receiver.result() != given
    assert handoffs() == before


def test_a_connection_is_passed_on_at_most_max_handoffs_times(
    monkeypatch: pytest.MonkeyPatch,
    giver: DjangoGiver,
    settings_of: Callable[..., dict[str, Any]],
    raw_connections: Any,
    settled_ids: Settled,
) -> None:
    monkeypatch.setattr(retry, "FIRST_DELAY", 30.0)
    monkeypatch.setattr(retry, "MAX_DELAY", 30.0)
    monkeypatch.setattr(handoff, "MAX_HANDOFFS", 1)
    raw_connections(2)
    given = giver.id
    first = django_receiver(settings_of())
    giver.close()
    deadline = time.monotonic() + 5
    while first.got is None:  # the first receiver has it and uses it
        assert time.monotonic() < deadline
        time.sleep(0.005)
    assert first.got == given
    with override_settings(PA_DBHEALTH={**NO_LINE, "CONNECT_RETRY": 1.0}):
        second = django_receiver(settings_of())
    assert first.result() == given  # it closes: handed over once already, so for real
    assert given not in settled_ids(lambda ids: given not in ids)
    assert second.result() != given


def test_a_waiter_with_other_settings_does_not_use_it(
    giver: DjangoGiver,
    settings_of: Callable[..., dict[str, Any]],
    raw_connections: Any,
    settled_ids: Settled,
    slow_retries: None,
) -> None:
    raw_connections(2)
    given = giver.id
    other = settings_of(OPTIONS={"init_command": "SET @pa_dbhealth_test = 1"})
    receiver = django_receiver(other)
    giver.close()

    got = receiver.result()
    # It closed the one handed to it, which freed the slot, and connected at once.
    assert got != given
    assert receiver.waited < 10  # not its next attempt, 20-30 s away
    assert given not in settled_ids(lambda ids: given not in ids)
