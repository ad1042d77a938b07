"""Reuse of a kept connection, in each face (the middleware at a request's start, an
``install()``-ed pool at checkout), against the real server: a connection the server ended
(KILL, or its own wait_timeout) is replaced before use, one idle past the learned limit is
replaced before the server drops it (both counted by the core's reason, the dead one logged
with it), and without the face the dropped one fails.

What only one face has stays in its module: the pool's dirty check-in
(``test_sqlalchemy_install``), async requests and views without database use
(``test_middleware``), ``keep_fresh`` / ``fresh_connections`` (``test_hygiene``)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.conf import settings
from django.db import connections
from django.db.utils import OperationalError
from django.test import Client, override_settings
from faces import DJANGO

from pa_dbhealth.core import staleness, waits
from pa_dbhealth.core.errors import Kind, classify

SERVER_TIMEOUT = 3  # seconds: the server drops a connection idle this long
PAST_THE_SERVER = 3.8  # a real wait: the server's own timeout is the point
MARGIN_0 = {"TIMEOUT_MARGIN": 0}  # the idle limit is the server's timeout itself
PLAIN_MIDDLEWARE = [m for m in settings.MIDDLEWARE if not m.startswith("pa_dbhealth.")]


@dataclass
class Reuse:
    use: Callable[[], int]  # a unit of work (a request, a checkout): its connection's id
    learned: Callable[[], int]  # the server's timeout the face learned
    error: type[Exception]  # what a unit of work raises on a lost connection


def django_reuse(installed: bool, options: dict[str, Any]) -> Iterator[Reuse]:
    """Requests through the test client, the alias's connection kept between them
    (CONN_MAX_AGE = 600; the test client does not close it at a request's end)."""
    from pa_dbhealth import hygiene

    settings_dict = connections["default"].settings_dict
    before = settings_dict["CONN_MAX_AGE"]
    settings_dict["CONN_MAX_AGE"] = 600
    connections["default"].close()
    overrides: dict[str, Any] = {"ROOT_URLCONF": "testsite.hygiene_urls", "PA_DBHEALTH": options}
    if not installed:
        overrides["MIDDLEWARE"] = PLAIN_MIDDLEWARE
    client = Client()

    def use() -> int:
        response = client.get("/connection-id/")
        assert response.status_code == 200
        return int(response.content)

    try:
        with override_settings(**overrides):
            yield Reuse(use, lambda: hygiene.server_idle_timeout("default"), OperationalError)
    finally:
        connections["default"].close()
        settings_dict["CONN_MAX_AGE"] = before


def engine_reuse(
    installed: bool, options: dict[str, Any], make_engine: Callable[..., Any]
) -> Iterator[Reuse]:
    """Checkouts from a pool of one connection, installed with ``options``."""
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError as EngineError

    from pa_dbhealth.sqlalchemy import events, install

    engine = make_engine(pool_size=1, max_overflow=0)
    if installed:
        install(engine, options)

    def use() -> int:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT CONNECTION_ID()")).scalar_one())

    def learned() -> int:
        state = events.installed(engine)
        assert state is not None
        return int(events.LEARNED.server_timeout(state.key, 300))

    yield Reuse(use, learned, EngineError)


@pytest.fixture
def reusing(
    face: str, make_engine: Callable[..., Any], django_db_blocker: Any
) -> Iterator[Callable[..., Reuse]]:
    """``reusing(installed=True, **options)``: the face, with these PA_DBHEALTH options."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(django_db_blocker.unblock())

        def make(installed: bool = True, **options: Any) -> Reuse:
            made = django_reuse if face == DJANGO else engine_reuse
            extra = () if face == DJANGO else (make_engine,)
            return stack.enter_context(contextlib.contextmanager(made)(installed, options, *extra))

        yield make


def stale_closes(label: str) -> int:
    """How many connections this process replaced as stale for ``label`` (dead, idle...)."""
    return int(waits.figures()["counters"].get(waits.STALE, {}).get(label, 0))


def test_a_connection_the_server_killed_is_replaced_before_use(
    reusing: Callable[..., Reuse], admin: Any, caplog: pytest.LogCaptureFixture
) -> None:
    reuse = reusing()
    killed = reuse.use()
    before = stale_closes("dead")
    admin.execute("KILL CONNECTION %s", [killed])
    with caplog.at_level(logging.DEBUG, logger="pa_dbhealth"):
        assert reuse.use() != killed  # its socket said it was gone
    assert staleness.DEAD in caplog.text  # the same reason, in the face's own log line
    assert stale_closes("dead") == before + 1


def test_a_connection_the_server_dropped_is_replaced(
    reusing: Callable[..., Reuse], wait_timeout: Callable[[int], None]
) -> None:
    wait_timeout(SERVER_TIMEOUT)
    reuse = reusing(**MARGIN_0)
    first = reuse.use()
    time.sleep(PAST_THE_SERVER)
    assert reuse.use() != first


def test_control_without_the_face_the_dropped_connection_fails(
    reusing: Callable[..., Reuse], wait_timeout: Callable[[int], None]
) -> None:
    wait_timeout(SERVER_TIMEOUT)
    reuse = reusing(installed=False)
    reuse.use()
    time.sleep(PAST_THE_SERVER)
    with pytest.raises(reuse.error) as raised:
        reuse.use()
    fault = classify(getattr(raised.value, "orig", raised.value))
    assert fault.kind is Kind.LOST
    assert fault.code in (2006, 2013, 4031)


def test_a_connection_idle_past_the_limit_is_replaced_before_the_server_drops_it(
    reusing: Callable[..., Reuse], wait_timeout: Callable[[int], None]
) -> None:
    wait_timeout(SERVER_TIMEOUT)  # learned from the first connection; the margin leaves 1.5 s
    reuse = reusing()
    first = reuse.use()
    assert reuse.learned() == SERVER_TIMEOUT
    assert reuse.use() == first  # used at once: kept
    before = stale_closes("idle")
    time.sleep(2)  # past 1.5 s, before the server's 3 s
    assert reuse.use() != first
    assert stale_closes("idle") == before + 1
