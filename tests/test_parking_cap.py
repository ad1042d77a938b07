"""PARK when the account's cap changes on the server while connections are parked: the
server is the truth, and the counts on a parked connection bring the line to it. Against
the real capped server and the host's real line."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from test_parking import ALIAS, console_connects, in_line, parked_two, until

from pa_dbhealth.backends.mysql.base import DatabaseWrapper
from pa_dbhealth.core import line as lines
from pa_dbhealth.core import parking, recount, releaser

__all__ = ["in_line"]  # the fixture, shared with test_parking

pytestmark = pytest.mark.usefixtures("unblocked_db")

# The cap is read as it is now at the first count CAP_EVERY after the last read (a count
# at least every SETTLED_CHECK_INTERVAL, or later on a loaded machine: twice that, and a
# second more).
CAP_READ_WITHIN = 2 * (recount.CAP_EVERY + releaser.SETTLED_CHECK_INTERVAL) + 1.0


@pytest.fixture
def account_cap(admin: Any, server: Any) -> Iterator[Callable[[int], None]]:
    """Change the account's cap on the server (as the host's admin would); 3 again after."""

    def alter(cap: int) -> None:
        admin.execute(f"ALTER USER %s@'%%' WITH MAX_USER_CONNECTIONS {int(cap)}", [server.user])

    yield alter
    alter(3)


def test_a_cap_lowered_while_connections_are_parked(
    in_line: tuple[dict[str, Any], lines.Line],
    raw_connections: Any,
    account_cap: Callable[[int], None],
) -> None:
    """Two connections parked and a token free; the cap lowered to 2: the account is full
    with the site's parked connections alone. The line takes the new cap from the next
    count, and the idle site gives a slot back: a console gets in as at cap 3 (it was
    refused until the idle limit: the counts read the cap the parked connections logged
    in with)."""
    settings_dict, line = in_line
    parked_two(settings_dict)
    account_cap(2)
    waited, refused = console_connects(raw_connections)
    print(f"\nthe console got in after {waited * 1000:.0f} ms ({refused} refusals)")
    assert waited < CAP_READ_WITHIN + 2 * releaser.CHECK_INTERVAL + 0.25
    until(lambda: line.cap == 2, timeout=1.0)
    # The account full with the console in it: the other parked connection is given up
    # too, and the line has both its tokens back.
    until(lambda: parking.LOT.count(ALIAS) == 0 and line.free == 2, timeout=1.0)


def test_a_cap_raised_while_connections_are_parked(
    in_line: tuple[dict[str, Any], lines.Line], account_cap: Callable[[int], None]
) -> None:
    """Two connections parked; the cap raised to 5: the line has the two new slots as
    free tokens from the next count, and three more connects get in at once while the
    parked ones stay parked."""
    settings_dict, line = in_line
    parked_two(settings_dict)
    account_cap(5)
    until(lambda: line.cap == 5 and line.free == 3, timeout=CAP_READ_WITHIN + 0.5)
    others = [DatabaseWrapper(settings_dict, alias=f"other{n}") for n in range(3)]
    try:
        for wrapper in others:
            wrapper.ensure_connection()
        assert parking.LOT.count(ALIAS) == 2
    finally:
        for wrapper in others:
            wrapper.close()
