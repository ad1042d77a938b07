"""Huey: pa_dbhealth.jobs.huey.connect(huey) applies the staleness rule around every task,
through Huey's pre_execute and post_execute hooks. A RedisHuey on a Redis of the test's
own, its consumer started in this process with one thread worker."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("huey")

from huey import RedisHuey
from huey.exceptions import TaskException
from jobsupport import (
    JobFailed,
    assert_kept_then_replaced,
    assert_meets_the_dropped_connection,
    close_connections,
    connection_id,
    idle_spell,
    redis_server,
)

from pa_dbhealth.jobs import huey as huey_hook


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


class Worker:
    """A Huey instance with the suite's two tasks and a consumer running them."""

    def __init__(self, redis_url: str) -> None:
        self.huey = RedisHuey("pa_dbhealth_tests", url=redis_url, results=True)
        self.connection_id = self.huey.task()(connection_id)
        self.close = self.huey.task()(close_connections)

    def run(self) -> str:
        try:
            return str(self.connection_id().get(blocking=True, timeout=10))
        except TaskException as exc:
            raise JobFailed(exc.metadata.get("traceback", str(exc))) from None

    @property
    def consumer(self) -> Any:
        return self.huey.create_consumer(
            workers=1, worker_type="thread", periodic=False, initial_delay=0.05, max_delay=0.2
        )


@pytest.fixture
def worker(
    redis_url: str, wait_timeout: Callable[[int], None], admin: Any, unblocked_db: None
) -> Iterator[Worker]:
    made = Worker(redis_url)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    consumer = made.consumer
    with idle_spell(wait_timeout, admin):
        consumer.start()  # it sets the process's signal handlers: given back below
        try:
            yield made
            made.close().get(blocking=True, timeout=10)
        finally:
            consumer.stop(graceful=True)
            for number, handler in handlers.items():
                signal.signal(number, handler)


def test_a_task_after_the_worker_idled_gets_a_live_connection(worker: Worker) -> None:
    huey_hook.connect(worker.huey)
    assert_kept_then_replaced(worker.run)


def test_control_without_the_hooks_the_task_meets_the_dropped_connection(
    worker: Worker,
) -> None:
    assert_meets_the_dropped_connection(worker.run)
