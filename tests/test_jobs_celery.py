"""Celery: pa_dbhealth.jobs.celery.connect_signals() applies the staleness rule around
every task, in an embedded worker (solo pool, a thread of this process) on a Redis broker
of the test's own. CELERY_DB_REUSE_MAX keeps connections between tasks (without it
Celery's Django fix-up closes them all around each task)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("celery")

from celery import Celery
from celery.contrib.testing.worker import start_worker
from jobsupport import (
    JobFailed,
    assert_kept_then_replaced,
    assert_meets_the_dropped_connection,
    close_connections,
    connection_id,
    idle_spell,
    redis_server,
)

from pa_dbhealth.jobs import celery as celery_hook


@pytest.fixture(scope="module")
def broker() -> Iterator[str]:
    with redis_server() as url:
        yield url


class Worker:
    """A Celery app with the suite's two tasks and an embedded worker running them."""

    def __init__(self, broker: str) -> None:
        self.app = Celery("pa_dbhealth_tests", broker=broker, backend=broker, set_as_current=False)
        self.app.conf.update(CELERY_DB_REUSE_MAX=1000, broker_connection_retry_on_startup=True)
        self.connection_id = self.app.task(name="tests.connection_id")(connection_id)
        self.close = self.app.task(name="tests.close_connections")(close_connections)

    def run(self) -> str:
        result = self.connection_id.delay()
        value = result.get(timeout=10, propagate=False)
        if result.failed():
            raise JobFailed(str(result.traceback))
        return str(value)


@pytest.fixture
def worker(
    broker: str,
    wait_timeout: Callable[[int], None],
    admin: Any,
    unblocked_db: None,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Worker]:
    # Celery's Django fix-up runs the system checks as the worker starts; on Django 6 the
    # model checks connect to every alias, the suite's deliberately unreachable one too.
    monkeypatch.setenv("CELERY_SKIP_CHECKS", "1")
    made = Worker(broker)
    with (
        idle_spell(wait_timeout, admin),
        start_worker(made.app, pool="solo", perform_ping_check=False, loglevel="WARNING"),
    ):
        yield made
        made.close.delay().get(timeout=10)


@pytest.fixture
def hooked() -> Iterator[None]:
    celery_hook.connect_signals()
    yield
    celery_hook.disconnect_signals()


def test_a_task_after_the_worker_idled_gets_a_live_connection(hooked: None, worker: Worker) -> None:
    assert_kept_then_replaced(worker.run)


def test_control_without_the_signals_the_task_meets_the_dropped_connection(
    worker: Worker,
) -> None:
    assert_meets_the_dropped_connection(worker.run)
