"""PARK's releaser thread outlives the last parked connection by LINGER (a site between two
requests parks again in a moment), and whatever is parked meanwhile, even as the linger
ends, is watched: a waiter of the line gets its slot. Against the real capped server (cap
3) and the host's real line."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import pytest
from test_parking import in_line, request, until

from pa_dbhealth.backends.mysql.base import DatabaseWrapper
from pa_dbhealth.core import line as lines
from pa_dbhealth.core import parking, releaser

__all__ = ["in_line"]  # the fixture, shared with test_parking

pytestmark = pytest.mark.usefixtures("unblocked_db")


def releasers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "pa_dbhealth-parking"]


def watched() -> bool:
    """Whether what is parked has a releaser (read under the lot's lock)."""
    with parking.LOT._lock:
        return not parking.LOT._parked or parking.LOT._releaser is not None


def a_waiter_gets_in(settings_dict: dict[str, Any]) -> float:
    """With the two free slots held by this process, a connect of another database alias
    (it cannot take the parked connection itself) stands in the line: seconds until it is
    in, which only the releaser can make short."""
    holders = [DatabaseWrapper(settings_dict, alias=f"holder{n}") for n in range(2)]
    waiter = DatabaseWrapper(settings_dict, alias="waiter")
    try:
        for holder in holders:
            holder.ensure_connection()
        started = time.monotonic()
        waiter.ensure_connection()
        return time.monotonic() - started
    finally:
        for wrapper in (waiter, *holders):
            wrapper.close()


def test_the_releaser_lingers_then_ends(in_line: tuple[dict[str, Any], lines.Line]) -> None:
    """Between two requests the same releaser goes on (no thread started per request); it
    ends LINGER after the last parked connection left, and the next park starts one."""
    settings_dict, _ = in_line
    for earlier in releasers():  # an earlier test's, lingering: gone within LINGER
        earlier.join(releaser.LINGER + 1.0)
    request(settings_dict)
    (first,) = releasers()
    for _ in range(20):
        request(settings_dict)
    assert releasers() == [first]
    parking.LOT.release_due(everything=True)
    assert first.is_alive()  # lingering
    first.join(releaser.LINGER + 1.0)
    assert not first.is_alive()
    request(settings_dict)
    (second,) = releasers()
    assert second is not first
    assert a_waiter_gets_in(settings_dict) < 0.5


def test_what_is_parked_as_the_linger_ends_is_watched(
    in_line: tuple[dict[str, Any], lines.Line], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A linger of 2 ms, and parks at random moments around its end: never a parked
    connection without a releaser (one left so would keep its slot from every waiter of
    the host until the next park), and a waiter gets the slot at the end."""
    monkeypatch.setattr(releaser, "LINGER", 0.002)
    settings_dict, line = in_line
    chance = random.Random(25)
    for _ in range(300):
        request(settings_dict)
        assert watched()
        parking.LOT.release_due(everything=True)
        time.sleep(chance.uniform(0.0, 0.006))
    request(settings_dict)
    assert watched()
    assert a_waiter_gets_in(settings_dict) < 0.5
    until(lambda: line.free == 3 - parking.LOT.count())  # the holders and the waiter parked
