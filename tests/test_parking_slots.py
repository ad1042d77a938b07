"""PARK and the account's last slots: the last free token is parked while the site is busy,
one is given back when it idles (or after a while with no slot free, for a console), and
tokens the line lost on a passing word of the server come back. Against the real capped
server (cap 3) and the host's real line."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest
from conftest import account_connection_ids
from test_parking import ALIAS, console_connects, counts_in, in_line, parked_two, request, until

from pa_dbhealth import tracker
from pa_dbhealth.backends.mysql.base import DatabaseWrapper
from pa_dbhealth.core import line as lines
from pa_dbhealth.core import parking, recount, releaser
from pa_dbhealth.core.connect import Ticket
from pa_dbhealth.core.line.sysv import MAX_TOKENS

__all__ = ["in_line"]  # the fixture, shared with test_parking

pytestmark = pytest.mark.usefixtures("unblocked_db")


def park_three(settings_dict: dict[str, Any]) -> set[int]:
    """Three requests at once, all parked at their end, the last free token too: the
    server's ids."""
    wrappers = [DatabaseWrapper(settings_dict, alias=ALIAS) for _ in range(3)]
    for wrapper in wrappers:
        wrapper.ensure_connection()
    ids = {int(wrapper.connection.thread_id()) for wrapper in wrappers}
    for wrapper in wrappers:
        wrapper.close()
    return ids


def said(message: str, caplog: pytest.LogCaptureFixture) -> None:
    """Fails unless the releaser says ``message`` within a second: it says why just after
    the token is back, so a waiter gets the token first."""
    until(lambda: message in caplog.text, timeout=1.0)


def test_the_last_free_token_is_parked_until_the_site_idles(
    in_line: tuple[dict[str, Any], lines.Line], admin: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """While the site is busy every slot serves without a connect; once no connection
    has been taken for a count, one is given back so a console finds a slot."""
    caplog.set_level(logging.DEBUG, logger="pa_dbhealth.parking")
    settings_dict, line = in_line
    ids = park_three(settings_dict)
    took = until(lambda: parking.LOT.count(ALIAS) == 2 and line.free == 1, timeout=5)
    assert took < 1.0
    said("gave up a parked connection: the site idles with no slot free", caplog)
    until(lambda: len(account_connection_ids(admin)) == 2)
    assert set(account_connection_ids(admin)) < ids  # the two others were kept


def busy(settings_dict: dict[str, Any], until_: threading.Event, seconds: float) -> set[int]:
    """Requests one after another (each takes a parked connection) until ``until_`` is set
    or ``seconds`` have passed; the server's ids they used. The thread is marked as a
    site's request thread is, so the tracker does not take each connection for a leak (a
    warning each, which slowed the loop enough on a loaded machine that a count found no
    take since the one before: the site idled)."""
    tracker.mark_holder()
    used = set()
    stop_at = time.monotonic() + seconds
    while not until_.is_set() and time.monotonic() < stop_at:
        used.add(request(settings_dict))
        time.sleep(0.002)
    return used


def test_a_busy_site_keeps_every_slot(in_line: tuple[dict[str, Any], lines.Line]) -> None:
    """Requests one after another on a site with every slot parked, for fewer counts than
    FULL_COUNTS: each takes a parked connection, and nothing is given back meanwhile."""
    settings_dict, line = in_line
    ids = park_three(settings_dict)
    released = parking.LOT.released
    seconds = recount.FULL_COUNTS / 2 * releaser.CHECK_INTERVAL
    assert busy(settings_dict, threading.Event(), seconds) <= ids  # no connect
    assert parking.LOT.released == released
    assert parking.LOT.count(ALIAS) == 3
    assert line.free == 0


def test_a_console_at_a_busy_site_gets_in(
    in_line: tuple[dict[str, Any], lines.Line],
    raw_connections: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every slot parked and the site never idle for a count: a console (outside the
    line, the server's 1226 its only answer) gets in once FULL_COUNTS counts have found
    no slot free, while the site goes on."""
    caplog.set_level(logging.DEBUG, logger="pa_dbhealth.parking")
    settings_dict, _ = in_line
    park_three(settings_dict)
    console_in = threading.Event()
    site = threading.Thread(target=busy, args=(settings_dict, console_in, 10.0))
    site.start()
    try:
        waited, refused = console_connects(raw_connections)
    finally:
        console_in.set()
        site.join()
    bound = recount.FULL_COUNTS * releaser.CHECK_INTERVAL
    print(f"\nthe console got in after {waited * 1000:.0f} ms ({refused} refusals)")
    assert refused > 0  # the site kept every slot for a while
    assert waited < bound + 1.0
    said(f"no slot free for {recount.FULL_COUNTS} counts", caplog)


@pytest.mark.parametrize("how", ["retired", "counted short"])
def test_tokens_lost_while_connections_are_parked_come_back(
    in_line: tuple[dict[str, Any], lines.Line], how: str
) -> None:
    """Tokens leave the line on a transient word of the server: a connect refused with a
    token retires it (the connection of a worker killed with kill -9, not let go yet), a
    recount catches a connect that holds its token but is not listed yet. While the site
    reuses what it parked, no connect comes to count the account again: the counts on a
    parked connection give the tokens back, and the parked connection is kept."""
    settings_dict, line = in_line
    parked_id = request(settings_dict)
    assert parking.LOT.count(ALIAS) == 1
    if how == "retired":
        assert line.enter()
        Ticket(line).retire()  # as a connect refused with a token does
        assert line.retired
    else:
        line.force(1)
    assert line.free == 1
    until(lambda: line.free == 2, timeout=3 * releaser.CHECK_INTERVAL + 1.0)
    assert not line.retired
    assert request(settings_dict) == parked_id


def test_the_count_of_connections_taken_cannot_overflow(
    retrying_line: tuple[dict[str, Any], lines.Line],
) -> None:
    """Without anything parked nobody resets it: past the semaphore's maximum a take is
    still a take, and the count goes on from zero after a look."""
    _, line = retrying_line
    for _ in range(MAX_TOKENS + 5):
        line.note_taken()
    assert line.taken_since_last_look()
    assert not line.taken_since_last_look()
    assert line.enter()  # tokens are untouched
    Ticket(line).give_back()
    assert line.free == 3


def test_an_idle_site_counts_less_often_and_still_sees_a_slot_taken_outside(
    in_line: tuple[dict[str, Any], lines.Line],
    raw_connections: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The site idles with two connections parked and a slot free: once its counts keep
    finding the same, it counts about every SETTLED_CHECK_INTERVAL, not every
    CHECK_INTERVAL (the shared server is asked a few times a second, not 33). A scheduled
    task then takes the free slot outside the line: the next count sees it, the counts
    speed up, and a console still gets in within SETTLED_CHECK_INTERVAL, two
    CHECK_INTERVALs and a little."""
    settings_dict, _ = in_line
    parked_two(settings_dict)
    time.sleep(4 * releaser.SETTLED_CHECK_INTERVAL)  # 30, 60, 120, 240 ms apart
    made = counts_in(1.0, monkeypatch)
    assert 2 <= made <= 1.0 / releaser.CHECK_INTERVAL / 4, made  # about 4, not 33
    assert parking.LOT.count(ALIAS) == 2
    raw_connections(1)  # the scheduled task
    waited, _ = console_connects(raw_connections)
    bound = releaser.SETTLED_CHECK_INTERVAL + 2 * releaser.CHECK_INTERVAL + 0.25
    assert waited < bound, f"the console waited {waited * 1000:.0f} ms"
    assert parking.LOT.count(ALIAS) <= 1
