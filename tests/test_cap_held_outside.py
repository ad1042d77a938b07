"""At a cap someone else holds: consoles, scripts and apps without pa_dbhealth hold the
account's connections. Every waiter gets the driver's own error (a 503 with Retry-After
from either face: ``test_503_at_an_outsiders_cap``), the waiters of a host together try
the server about 20 times a second at most, a slot an outsider frees is taken at once, and
the line heals when the server disagrees with it (a cap changed on the server, a master
that connects before it forks, a line forced wrong, kill -9).

The figures each test measures are printed (``pytest -s`` shows them).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from conftest import account_ids_once
from django.db import OperationalError
from django.test import override_settings
from outsiders import (
    PROBES_PER_SECOND,
    RETIRING,
    aborted_connects,
)
from processes import Processes

from pa_dbhealth.backends.mysql.base import DatabaseWrapper
from pa_dbhealth.core import line as lines
from pa_dbhealth.core.retry import backoff

pytestmark = pytest.mark.usefixtures("unblocked_db")


def connect_once(settings_dict: dict[str, Any]) -> DatabaseWrapper:
    wrapper = DatabaseWrapper(settings_dict, alias="outside")
    wrapper.ensure_connection()
    wrapper.inc_thread_sharing()  # closed by the test's thread
    return wrapper


def test_no_number_of_attempts_overflows_the_backoff() -> None:
    for attempt in (1, 1025, 10**6, 2**70):
        assert 0 < backoff(attempt) <= 0.05


@pytest.mark.parametrize("waiters", [1, 4, 8])
def test_waiters_get_the_drivers_error_and_try_the_server_politely(
    retrying_line: tuple[dict[str, Any], lines.Line],
    raw_connections: Any,
    admin: Any,
    waiters: int,
) -> None:
    settings_dict, line = retrying_line
    raw_connections(3)  # a console holds the whole cap
    budget = 2.0
    before = aborted_connects(admin)
    started = time.monotonic()

    def wait() -> tuple[int, float]:
        try:
            connect_once(settings_dict).close()
        except OperationalError as exc:
            return int(exc.args[0]), time.monotonic() - started
        return 0, time.monotonic() - started

    with (
        override_settings(PA_DBHEALTH={"CONNECT_RETRY": budget}),
        ThreadPoolExecutor(waiters) as pool,
    ):
        outcomes = list(pool.map(lambda _: wait(), range(waiters)))
    elapsed = time.monotonic() - started
    refused = aborted_connects(admin) - before
    rate = refused / elapsed
    print(f"\n{waiters} waiter(s): {refused} refused connects in {elapsed:.2f} s = {rate:.1f}/s")
    assert all(code == 1226 for code, _ in outcomes), outcomes  # the driver's own error
    assert all(budget - 0.1 <= took <= budget + 1 for _, took in outcomes), outcomes
    # The head's probes, plus each waiter's first try and its last word at the deadline.
    assert refused <= PROBES_PER_SECOND * elapsed + 2 * waiters + RETIRING + 3
    assert line.free == 0  # as the server says: the console holds all 3 (tokens retired)


def test_a_slot_an_outsider_frees_is_taken_within_100_ms(
    retrying_line: tuple[dict[str, Any], lines.Line], raw_connections: Any
) -> None:
    settings_dict, line = retrying_line
    outsiders = raw_connections(3)
    got: list[float] = []
    done = threading.Event()

    def wait() -> None:
        wrapper = connect_once(settings_dict)
        got.append(time.monotonic())
        done.wait(20)
        wrapper.close()

    with override_settings(PA_DBHEALTH={"CONNECT_RETRY": 10.0}):
        threads = [threading.Thread(target=wait) for _ in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(0.5)  # all of them waiting, the head probing
        freed: list[float] = []
        for outsider in outsiders:
            freed.append(time.monotonic())
            outsider.close()
            deadline = time.monotonic() + 2
            while len(got) < len(freed) and time.monotonic() < deadline:
                time.sleep(0.001)
        done.set()
        for thread in threads:
            thread.join(20)
    delays = [after - before for before, after in zip(freed, got, strict=False)]
    shown = ", ".join(f"{d * 1000:.0f} ms" for d in delays)
    print(f"\nfrom an outsider's close to a waiter's connect: {shown}")
    assert len(got) == 4  # the fourth got in when the others closed
    assert len(delays) == 3 and max(delays) < 0.2
    assert line.free == 3


def test_a_cap_raised_and_lowered_on_the_server_reaches_the_line(
    retrying_line: tuple[dict[str, Any], lines.Line], admin: Any, server: Any
) -> None:
    settings_dict, line = retrying_line

    def alter(cap: int) -> None:
        admin.execute(f"ALTER USER %s@'%%' WITH MAX_USER_CONNECTIONS {int(cap)}", [server.user])

    try:
        alter(5)
        started = time.monotonic()
        with (
            override_settings(PA_DBHEALTH={"CONNECT_RETRY": 10.0}),
            ThreadPoolExecutor(5) as pool,
        ):
            five = list(pool.map(lambda _: connect_once(settings_dict), range(5)))
        took = time.monotonic() - started
        print(f"\ncap 3 -> 5: five connections in {took * 1000:.0f} ms; line cap {line.cap}")
        assert took < 2  # not CONNECT_RETRY: the line learned the new cap from the server
        assert line.cap == 5 and line.free == 0
        for wrapper in five:
            wrapper.close()
        assert line.free == 5
        alter(2)
        with override_settings(PA_DBHEALTH={"CONNECT_RETRY": 0.5}):
            two = [connect_once(settings_dict) for _ in range(2)]
            with pytest.raises(OperationalError):
                connect_once(settings_dict)
        print(f"cap 5 -> 2: line cap {line.cap}, {line.free} free with two held")
        assert line.cap == 2 and line.free == 0
        for wrapper in two:
            wrapper.close()
        assert line.free == 2
    finally:
        alter(3)


@pytest.mark.parametrize("forced", [0, 5], ids=["none-free", "cap-plus-two"])
def test_a_line_forced_wrong_is_repaired(
    retrying_line: tuple[dict[str, Any], lines.Line], admin: Any, forced: int
) -> None:
    settings_dict, line = retrying_line
    line.force(forced)
    started = time.monotonic()
    with override_settings(PA_DBHEALTH={"CONNECT_RETRY": 10.0}):
        wrapper = connect_once(settings_dict)
    took = time.monotonic() - started
    wrapper.close()
    print(f"\nline forced to {forced}: connected in {took * 1000:.0f} ms, then {line.free} free")
    assert took < 1  # never the whole CONNECT_RETRY against a server with room
    assert account_ids_once(admin, lambda ids: not ids) == []  # its close read by the server
    assert line.free == 3  # as the server: 3 free, none held


def holder_code(settings_dict: dict[str, Any], hold: float) -> str:
    return (
        "import django, time\nfrom django.conf import settings\n"
        f"settings.configure(DATABASES={{'default': {settings_dict!r}}},"
        " PA_DBHEALTH={'CONNECT_RETRY': 30.0})\ndjango.setup()\n"
        "from django.db import connection\n"
        "print('connecting', flush=True)\nconnection.ensure_connection()\n"
        f"print('in', flush=True)\ntime.sleep({hold})\n"
    )


def test_kill_9_of_holders_and_of_waiters_loses_no_token(
    retrying_line: tuple[dict[str, Any], lines.Line], account_ids: Any
) -> None:
    settings_dict, line = retrying_line
    spawn: Callable[[], subprocess.Popen[str]] = lambda: subprocess.Popen(  # noqa: E731
        [sys.executable, "-c", holder_code(settings_dict, 60)],
        stdout=subprocess.PIPE,
        text=True,
    )
    holders = [spawn() for _ in range(3)]
    for proc in holders:
        assert proc.stdout is not None and proc.stdout.readline() == "connecting\n"
        assert proc.stdout.readline() == "in\n"
    waiters = [spawn() for _ in range(2)]
    deadline = time.monotonic() + 10
    while line.waiting < 2:
        assert time.monotonic() < deadline, "they never waited"
        time.sleep(0.01)
    for proc in [*waiters, holders[0]]:  # a waiter at the head, one behind it, a holder
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    print(f"\nafter kill -9 of two waiters and one holder: {line.free} free, 2 held")
    assert line.free == 1
    for proc in holders[1:]:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert line.free == 3
    deadline = time.monotonic() + 5
    while account_ids() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert account_ids() == []


def test_a_master_that_connects_before_it_forks_keeps_the_line_true(
    retrying_line: tuple[dict[str, Any], lines.Line], processes: Processes, account_ids: Any
) -> None:
    _, line = retrying_line
    settings = {"PA_DBHEALTH": {"CONNECT_RETRY": 5.0}}
    databases = {"default": {**retrying_line[0], "TEST": {}}}
    site = processes.uwsgi(
        processes=3,
        settings={**settings, "DATABASES": databases},
        env={"TESTSITE_CONNECT_AT_IMPORT": "1"},
        options=("--max-requests=10",),  # workers recycled along the way
    )
    for _ in range(30):
        status, body = site.get("/connection/")
        assert status == 200, body
    print(f"\nafter 30 requests through 3 forked workers: {line.free} free (cap {line.cap})")
    assert line.free <= line.cap
    assert line.free >= line.cap - 1  # at most the master's own connection holds one
    site.stop()
    assert line.free == 3
