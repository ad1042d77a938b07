"""The backoff policy on its own: what it retries, how long it waits, what it raises.

The errors are the driver's own classes with the server's own messages; the server-backed
behaviour (a real full cap, a real release) is in ``test_backend_retry.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import MySQLdb
import pytest
from clock import Clock

from pa_dbhealth.core.errors import Classified, Kind
from pa_dbhealth.core.retry import FIRST_DELAY, MAX_DELAY, backoff, connect_with_retry

CAP = MySQLdb.OperationalError(
    1226, "User 'app' has exceeded the 'max_user_connections' resource (current value: 3)"
)
QUOTA = MySQLdb.OperationalError(
    1226, "User 'app' has exceeded the 'max_connections_per_hour' resource (current value: 1)"
)
SERVER_CAP = MySQLdb.OperationalError(1203, "User app already has more than 'max_user_connections'")
TOO_MANY = MySQLdb.OperationalError(1040, "Too many connections")
DENIED = MySQLdb.OperationalError(1045, "Access denied for user 'app'@'localhost'")


def failing(times: int, error: BaseException) -> tuple[Callable[[], str], list[float]]:
    """A connect that fails ``times`` times with ``error``, then answers; and its call times."""
    calls: list[float] = []

    def connect() -> str:
        calls.append(time.monotonic())
        if len(calls) <= times:
            raise error
        return "connection"

    return connect, calls


@pytest.mark.parametrize("error", [CAP, SERVER_CAP, TOO_MANY], ids=["1226", "1203", "1040"])
def test_cap_errors_are_retried_until_the_connect_succeeds(error: BaseException) -> None:
    connect, calls = failing(3, error)
    seen: list[tuple[Kind, int, float]] = []

    def on_retry(classified: Classified, attempt: int, delay: float) -> None:
        seen.append((classified.kind, attempt, delay))

    assert connect_with_retry(connect, budget=5, on_retry=on_retry) == "connection"
    assert len(calls) == 4
    assert [attempt for _, attempt, _ in seen] == [1, 2, 3]
    assert all(kind.is_cap for kind, _, _ in seen)
    for (_, _, delay), before, after in zip(seen, calls, calls[1:], strict=False):
        assert after - before >= delay * 0.9


@pytest.mark.parametrize("error", [QUOTA, DENIED], ids=["hourly-quota", "access-denied"])
def test_other_errors_are_raised_at_once(error: BaseException) -> None:
    connect, calls = failing(1, error)
    retried: list[int] = []
    with pytest.raises(MySQLdb.OperationalError) as excinfo:
        connect_with_retry(connect, budget=5, on_retry=lambda c, a, d: retried.append(a))
    assert excinfo.value is error
    assert len(calls) == 1 and retried == []


def test_gives_up_at_the_deadline_with_the_last_error(clock: Clock) -> None:
    connect, calls = failing(10_000, CAP)
    given_up: list[tuple[int, float]] = []
    started = time.monotonic()
    with pytest.raises(MySQLdb.OperationalError) as excinfo:
        connect_with_retry(
            connect,
            budget=0.3,
            on_giveup=lambda c, attempts, t: given_up.append((attempts, t)),
            wait=clock.sleep,  # each wait moves the clock: the rule, without the waiting
        )
    elapsed = time.monotonic() - started
    assert excinfo.value is CAP
    assert 0.3 <= elapsed < 0.3 + MAX_DELAY + 0.1  # never slept past the deadline
    assert calls[-1] - started >= 0.3  # the last attempt is made at the deadline
    assert given_up == [(len(calls), pytest.approx(elapsed, abs=0.05))]


def test_zero_budget_tries_once() -> None:
    connect, calls = failing(1, CAP)
    with pytest.raises(MySQLdb.OperationalError):
        connect_with_retry(connect, budget=0)
    assert len(calls) == 1


def test_backoff_grows_to_its_cap_with_jitter() -> None:
    firsts = [backoff(1) for _ in range(200)]
    assert all(FIRST_DELAY / 2 <= d <= FIRST_DELAY for d in firsts)
    assert len(set(firsts)) > 100  # jittered: callers do not retry in lockstep
    assert all(2 * FIRST_DELAY / 2 <= backoff(2) <= 2 * FIRST_DELAY for _ in range(50))
    assert all(MAX_DELAY / 2 <= backoff(30) <= MAX_DELAY for _ in range(50))


def test_a_connection_handed_over_during_a_wait_ends_the_retries() -> None:
    connect, calls = failing(100, CAP)
    waits: list[float] = []

    def wait(delay: float) -> str | None:
        waits.append(delay)
        return "handed over" if len(waits) == 3 else None  # the first two waits end empty

    assert connect_with_retry(connect, budget=5, wait=wait) == "handed over"
    assert len(calls) == 3  # an attempt after each empty wait, none after the handoff
    assert all(0 < delay <= MAX_DELAY for delay in waits)
