"""The line at the cap: first come, first served across processes, tokens never lost.

The core's line is a System V semaphore; these tests use real processes for what crosses
processes (order, a kill -9) and the retrying backend against the real capped server for
what a site sees.
"""

from __future__ import annotations

import ctypes
import gc
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings
from holders import Holder

from pa_dbhealth.backends.mysql.base import DatabaseWrapper
from pa_dbhealth.core import line as lines
from pa_dbhealth.core.line.sysv import GETVAL, IPC_NOWAIT, TAKEN


def _available() -> bool:
    found = lines.open_line("probe:0", "probe", 1) is not None
    lines.forget("probe:0", "probe")
    return found


pytestmark = pytest.mark.skipif(not _available(), reason="System V semaphores unavailable")


@pytest.fixture
def account() -> Iterator[tuple[str, str]]:
    """A line of the test's own: ``(server, account)``, removed after the test."""
    made = (f"test-{uuid.uuid4().hex[:12]}:1", "someone")
    yield made
    lines.forget(*made)


def waiter(server: str, account: str, hold: float) -> list[str]:
    """A Python process that waits in the line, says when it got in, holds, gives back."""
    code = textwrap.dedent(
        f"""
        import sys, time
        from pa_dbhealth.core import line as lines
        line = lines.open_line({server!r}, {account!r}, 1)
        print("waiting", flush=True)
        assert line.take(30)
        print("in", time.monotonic(), flush=True)
        time.sleep({hold})
        line.give_back()
        """
    )
    return [sys.executable, "-c", code]


def test_first_come_first_served_across_processes(account: tuple[str, str]) -> None:
    line = lines.open_line(*account, 1)
    assert line is not None and line.take(0)  # the test holds the only token
    started = []
    for _ in range(4):  # they arrive one after the other, each waiting before the next
        proc = subprocess.Popen(waiter(*account, 0.05), stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline() == "waiting\n"
        deadline = time.monotonic() + 10
        while line.waiting < len(started) + 1:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        started.append(proc)
    line.give_back()
    order = []
    for index, proc in enumerate(started):
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0
        order.append((float(out.split()[1]), index))
    assert [index for _, index in sorted(order)] == [0, 1, 2, 3]
    assert line.free == 1


def test_the_token_of_a_killed_process_comes_back(account: tuple[str, str]) -> None:
    line = lines.open_line(*account, 1)
    assert line is not None
    proc = subprocess.Popen(waiter(*account, 60), stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "waiting\n"
    assert proc.stdout.readline().startswith("in ")
    assert line.free == 0
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert line.take(5)  # the kernel gave its token back (SEM_UNDO)
    line.give_back()


def test_a_line_made_by_another_user_is_not_used(account: tuple[str, str]) -> None:
    if os.getuid() != 0:
        pytest.skip("needs root to make a line as another user")
    child = os.fork()
    if child == 0:  # the line made as "nobody", the way pa_dbhealth makes one
        os.setuid(65534)
        os._exit(0 if lines.open_line(*account, 1) is not None else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0  # nobody made it
    try:
        assert lines.open_line(*account, 1) is None
    finally:
        libc = ctypes.CDLL(None, use_errno=True)
        semid = libc.semget(lines.key_of(*account), lines.SEMAPHORES, 0)
        libc.semctl(semid, 0, lines.IPC_RMID)


def test_a_line_others_may_use_is_not_used(account: tuple[str, str]) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    semid = libc.semget(lines.key_of(*account), lines.SEMAPHORES, lines.IPC_CREAT | 0o666)
    assert semid >= 0
    try:
        assert lines.open_line(*account, 1) is None
    finally:
        libc.semctl(semid, 0, lines.IPC_RMID)


def test_operations_made_once_are_shared_by_threads_without_mixing_them_up(
    account: tuple[str, str],
) -> None:
    """The line's operations are built once and shared: threads taking and giving back
    tokens while others count and reset takes (a different operation for each count,
    so old ones are dropped from the cache meanwhile) lose no token and no take."""
    line = lines.open_line(*account, 2)
    assert line is not None
    rounds, looked, errors = 2000, [0], []

    def tokens() -> None:
        try:
            for _ in range(rounds):
                if line.take(0):
                    line.note_taken()
                    line.give_back()
                else:
                    line.note_taken()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def counter() -> None:
        for _ in range(rounds):
            taken = line._get(GETVAL, TAKEN)
            if taken and line._op((TAKEN, -taken, IPC_NOWAIT)):
                looked[0] += taken

    threads = [threading.Thread(target=tokens) for _ in range(4)]
    threads.append(threading.Thread(target=counter))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert line.free == 2
    assert looked[0] + line._get(GETVAL, TAKEN) == 4 * rounds


def test_the_cap_is_read_from_the_refusal() -> None:
    message = "User 'app' has exceeded the 'max_user_connections' resource (current value: 3)"
    assert lines.cap_in_message(message) == 3
    assert lines.cap_in_message("Too many connections") is None


# --- the retrying backend in line, against the real capped server -------------------------


# Connects that wait up to 10 s in the conftest's line (``retrying_line``).
waits_in_line = override_settings(PA_DBHEALTH={"CONNECT_RETRY": 10.0})


def connected(settings_dict: dict[str, Any], name: str, log: list[str]) -> Holder:
    def open_() -> None:
        wrapper = DatabaseWrapper(settings_dict, alias="inline")
        wrapper.ensure_connection()
        log.append(name)
        opened[name] = wrapper

    opened: dict[str, DatabaseWrapper] = {}
    holder = Holder(name, open_, lambda: opened[name].close())
    return holder


@pytest.mark.usefixtures("unblocked_db")
@waits_in_line
def test_requests_at_the_cap_are_served_in_the_order_they_came(
    retrying_line: tuple[dict[str, Any], lines.Line],
) -> None:
    settings_dict, line = retrying_line
    log: list[str] = []
    first = [connected(settings_dict, f"first-{n}", log).hold() for n in range(3)]
    assert line.free == 0
    later = []
    for n in range(4):
        holder = connected(settings_dict, f"later-{n}", log)
        holder.start()
        deadline = time.monotonic() + 10
        while line.waiting < n + 1:
            assert time.monotonic() < deadline, "it never waited in line"
            time.sleep(0.005)
        later.append(holder)
    # Each close lets exactly the next one in, in the order they came.
    for gone, next_in in zip([*first, later[0]], later, strict=True):
        gone.release()
        assert next_in.opened.wait(10)
        assert log[-1] == next_in.name
    for holder in later[1:]:
        holder.release()
    assert log[3:] == ["later-0", "later-1", "later-2", "later-3"]
    assert line.free == 3


@pytest.mark.usefixtures("unblocked_db")
@waits_in_line
def test_a_connection_dropped_without_close_gives_its_token_back(
    retrying_line: tuple[dict[str, Any], lines.Line],
) -> None:
    settings_dict, line = retrying_line

    def forgotten() -> None:  # a thread that ends without closing its connection
        DatabaseWrapper(settings_dict, alias="inline").ensure_connection()

    thread = threading.Thread(target=forgotten)
    thread.start()
    thread.join()
    gc.collect()
    assert line.free == 3


@pytest.mark.usefixtures("unblocked_db")
@waits_in_line
def test_a_token_holder_refused_by_the_server_gets_in_when_a_slot_frees(
    retrying_line: tuple[dict[str, Any], lines.Line], raw_connections: Any
) -> None:
    """Connections outside the line (a console, another host) take slots it cannot see."""
    settings_dict, line = retrying_line
    outside = raw_connections(3)
    threading.Timer(0.5, outside[0].close).start()
    started = time.monotonic()
    wrapper = DatabaseWrapper(settings_dict, alias="inline")
    wrapper.ensure_connection()
    try:
        assert 0.4 < time.monotonic() - started < 5
        # The line learned the outsiders: its tokens are the server's free slots (none).
        assert line.free == 0
    finally:
        wrapper.close()
    assert line.free == 1  # two consoles still hold theirs


# --- SQLAlchemy engines in the same line ---------------------------------------------------


def engine_connection(engine: Any, name: str, log: list[str]) -> Holder:
    """A holder that checks a connection out of ``engine`` and gives it back on release."""
    checked_out: dict[str, Any] = {}

    def open_() -> None:
        checked_out[name] = engine.connect()
        log.append(name)

    return Holder(name, open_, lambda: checked_out[name].close())


@pytest.mark.usefixtures("unblocked_db")
@waits_in_line
def test_sqlalchemy_and_django_wait_in_one_line_in_the_order_they_came(
    retrying_line: tuple[dict[str, Any], lines.Line], make_engine: Any
) -> None:
    """A Flask worker and a Django worker of one account on one host: one line for both."""
    pytest.importorskip("sqlalchemy")
    from sqlalchemy.pool import NullPool

    from pa_dbhealth.sqlalchemy import install

    settings_dict, line = retrying_line
    engine = install(make_engine(poolclass=NullPool), {"CONNECT_RETRY": 10.0})
    log: list[str] = []
    first = [connected(settings_dict, f"django-{n}", log).hold() for n in range(3)]
    assert line.free == 0
    later = [
        engine_connection(engine, "sqlalchemy-0", log),
        connected(settings_dict, "django-later", log),
        engine_connection(engine, "sqlalchemy-1", log),
    ]
    for n, holder in enumerate(later):
        holder.start()
        deadline = time.monotonic() + 10
        while line.waiting < n + 1:
            assert time.monotonic() < deadline, f"{holder.name} never waited in line"
            time.sleep(0.005)
    for gone, next_in in zip(first, later, strict=True):
        gone.release()
        assert next_in.opened.wait(10), next_in.name
        assert log[-1] == next_in.name
    assert line.free == 0
    for holder in later:
        holder.release()
    assert log[3:] == ["sqlalchemy-0", "django-later", "sqlalchemy-1"]
    assert line.free == 3  # NullPool closed each one: every token came back


@pytest.mark.usefixtures("unblocked_db")
@waits_in_line
def test_a_pooled_connection_keeps_its_token_until_the_pool_closes_it(
    retrying_line: tuple[dict[str, Any], lines.Line], make_engine: Any, admin: Any
) -> None:
    pytest.importorskip("sqlalchemy")
    from sqlalchemy import text

    from pa_dbhealth.sqlalchemy import install

    _, line = retrying_line
    engine = install(make_engine(pool_size=2, max_overflow=0), {"CONNECT_RETRY": 10.0})
    with engine.connect() as conn:
        own = conn.execute(text("SELECT CONNECTION_ID()")).scalar_one()
        assert line.free == 2
    assert line.free == 2  # back in the pool: it still holds a connection of the account
    admin.execute("KILL %s", (own,))
    time.sleep(0.1)
    with engine.connect() as conn:  # the dead one is replaced at checkout: its token returned
        assert conn.execute(text("SELECT CONNECTION_ID()")).scalar_one() != own
        assert line.free == 2
    engine.dispose()
    assert line.free == 3
