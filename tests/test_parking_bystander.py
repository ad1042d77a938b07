"""PARK in a process that does not count the account (another process of the host does): its
releaser wakes a few times a second, not every CHECK_INTERVAL, and still gives a parked
slot to a waiter at once, and takes the counter's role when its holder dies (``kill -9``).
Against the real capped server (cap 3) and the host's real line; the other process is a
real one that holds the role."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.test import override_settings
from test_parking import (
    ALIAS,
    PARK,
    console_connects,
    counts_in,
    in_line,
    parked_two,
    request,
    until,
)
from test_parking_pass import role_taken
from test_parking_releaser import a_waiter_gets_in

from pa_dbhealth.core import line as lines
from pa_dbhealth.core import parking, releaser

__all__ = ["in_line"]  # the fixture, shared with test_parking

pytestmark = pytest.mark.usefixtures("unblocked_db")

HOLD_THE_ROLE = """
import sys, time
from pa_dbhealth.core.line.semaphores import Line
from pa_dbhealth.core.line.sysv import SEMAPHORES, libc
key = int(sys.argv[1])
line = Line(libc().semget(key, SEMAPHORES, 0), key)
print("held" if line.become_counter() else "taken", flush=True)
time.sleep(600)
"""


@pytest.fixture
def counter_elsewhere(
    in_line: tuple[dict[str, Any], lines.Line],
) -> Iterator[subprocess.Popen[str]]:
    """Another process of the host holding the line's counter role (as a process with
    connections parked does); killed after the test."""
    _, line = in_line
    parking.LOT.release_due(everything=True)
    until(lambda: not role_taken(line))  # an earlier releaser's role: left as it ends
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_ROLE, str(line.key)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "held"
    yield holder
    holder.kill()
    holder.wait()


def rounds_in(seconds: float, monkeypatch: pytest.MonkeyPatch) -> int:
    """How many rounds the releaser makes in ``seconds`` (its counts of the account)."""
    made = [0]
    check_server = parking.LOT.check_server

    def counted(now: float | None = None) -> int:
        made[0] += 1
        return check_server(now)

    monkeypatch.setattr(parking.LOT, "check_server", counted)
    time.sleep(seconds)
    return made[0]


def test_a_bystander_wakes_a_few_times_a_second(
    in_line: tuple[dict[str, Any], lines.Line],
    counter_elsewhere: subprocess.Popen[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two connections parked here, the role held by the other process: about three rounds
    a second (at CHECK_INTERVAL it would be about thirty), and none of them counts."""
    settings_dict, line = in_line
    parked_two(settings_dict)
    seconds = 1.0
    rounds = rounds_in(seconds, monkeypatch)
    assert 1 <= rounds <= 5, rounds
    assert counts_in(seconds / 2, monkeypatch) == 0
    assert parking.LOT.count() == 2  # nothing given up: nobody waited, nothing counted
    counter_elsewhere.kill()
    counter_elsewhere.wait()
    # The kernel frees the dead holder's role; this process takes it at its next round and
    # counts from then on: at least every SETTLED_CHECK_INTERVAL (the site idles).
    until(lambda: line.key in parking.LOT._counting, releaser.BYSTANDER_INTERVAL + 1.0)
    assert counts_in(seconds, monkeypatch) >= seconds / releaser.SETTLED_CHECK_INTERVAL / 2


def test_a_bystander_gives_a_waiter_its_slot_at_once(
    in_line: tuple[dict[str, Any], lines.Line], counter_elsewhere: subprocess.Popen[str]
) -> None:
    """The kernel wakes a bystander's releaser as a connect stands in the line: the waiter
    is in within a few WATCH_INTERVALs, not after BYSTANDER_INTERVAL."""
    settings_dict, _ = in_line
    waits = []
    for _ in range(5):
        parking.LOT.release_due(everything=True)
        parked_two(settings_dict)
        time.sleep(0.05)  # the releaser is napping
        waits.append(a_waiter_gets_in(settings_dict))
    assert sorted(waits)[2] < releaser.BYSTANDER_INTERVAL / 3, waits


def test_a_console_is_let_in_after_the_counter_is_killed(
    in_line: tuple[dict[str, Any], lines.Line],
    counter_elsewhere: subprocess.Popen[str],
    raw_connections: Any,
) -> None:
    """The site idles with two connections parked here; the process that counted the
    account is killed with ``kill -9`` and a scheduled task takes the free slot outside the
    line. A console that connects next gets in once this process has taken the role and
    counted twice: within BYSTANDER_INTERVAL and a little, not never."""
    settings_dict, _ = in_line
    parked_two(settings_dict)
    os.kill(counter_elsewhere.pid, signal.SIGKILL)
    counter_elsewhere.wait()
    raw_connections(1)  # the scheduled task
    waited, _ = console_connects(raw_connections)
    bound = releaser.BYSTANDER_INTERVAL + 3 * releaser.CHECK_INTERVAL + 0.25
    assert waited < bound, f"the console waited {waited * 1000:.0f} ms"
    assert parking.LOT.count() <= 1


def test_a_bystander_gives_up_at_the_idle_limit(
    in_line: tuple[dict[str, Any], lines.Line],
    counter_elsewhere: subprocess.Popen[str],
    wait_timeout: Callable[[int], None],
) -> None:
    """A bystander's nap ends at the idle limit of what it parked, not at its next round."""
    settings_dict, _ = in_line
    wait_timeout(3)
    with override_settings(PA_DBHEALTH={**PARK, "TIMEOUT_MARGIN": 2}):  # idle limit: 1 s
        request(settings_dict)  # learns the timeout
        request(settings_dict)
        parked_at = time.monotonic()
        until(lambda: parking.LOT.count(ALIAS) == 0, timeout=10)
        idle = time.monotonic() - parked_at
    assert 0.9 < idle < 1.1, f"given up after {idle * 1000:.0f} ms"
