"""APScheduler: @fresh_connections on the job function applies the staleness rule around
every run (no event reaches a listener in the job's thread before the job runs: submission
is announced from the scheduler's thread, so a decorator is the hook that fits). A
BackgroundScheduler with one worker thread."""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("apscheduler")

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from jobsupport import (
    JobFailed,
    assert_kept_then_replaced,
    assert_meets_the_dropped_connection,
    close_connections,
    connection_id,
    idle_spell,
)

from pa_dbhealth import fresh_connections


@fresh_connections
def fresh_connection_id() -> str:
    return connection_id()


class Worker:
    """A running BackgroundScheduler with one worker thread; jobs are run at once."""

    def __init__(self) -> None:
        self.scheduler = BackgroundScheduler(executors={"default": ThreadPoolExecutor(1)})
        self.events: queue.Queue[JobExecutionEvent] = queue.Queue()
        self.scheduler.add_listener(self.events.put, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
        self.scheduler.start()

    def perform(self, func: Callable[[], str]) -> str:
        self.scheduler.add_job(func)
        event = self.events.get(timeout=10)
        if event.exception is not None:
            raise JobFailed(f"{event.exception!r}\n{event.traceback}")
        return str(event.retval)

    def stop(self) -> None:
        self.perform(close_connections)
        self.scheduler.shutdown()


@pytest.fixture
def worker(wait_timeout: Callable[[int], None], admin: Any, unblocked_db: None) -> Iterator[Worker]:
    with idle_spell(wait_timeout, admin):
        made = Worker()
        yield made
        made.stop()


def test_a_decorated_job_after_the_worker_idled_gets_a_live_connection(worker: Worker) -> None:
    assert_kept_then_replaced(lambda: worker.perform(fresh_connection_id))


def test_control_an_undecorated_job_meets_the_dropped_connection(worker: Worker) -> None:
    assert_meets_the_dropped_connection(lambda: worker.perform(connection_id))
