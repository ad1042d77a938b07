"""django-q2: pa_dbhealth.jobs.django_q.connect_signals() applies the staleness rule around
every task, through pre_execute and post_execute_in_worker. The cluster's own worker loop
(django_q.worker.worker, which a cluster runs in a process of its own) runs here in a
thread, fed through its task queue; django-q2 calls Django's close_old_connections()
before each task itself."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from multiprocessing import Queue, Value
from typing import Any

import pytest

pytest.importorskip("django_q")

from django.conf import settings
from django.test import override_settings
from django.utils import timezone
from jobsupport import (
    JobFailed,
    assert_kept_then_replaced,
    assert_meets_the_dropped_connection,
    close_connections,
    connection_id,
    idle_spell,
)


class Worker:
    """django-q2's worker loop in a thread of this process."""

    def __init__(self) -> None:
        from django_q.worker import worker

        self.tasks: Queue[Any] = Queue()
        self.results: Queue[Any] = Queue()
        self.thread = threading.Thread(
            target=worker, args=(self.tasks, self.results, Value("f", -1)), kwargs={"timeout": -1}
        )
        self.thread.start()

    def perform(self, func: Callable[[], str]) -> str:
        task_id = uuid.uuid4().hex
        self.tasks.put(
            {
                "id": task_id,
                "name": task_id,
                "func": func,
                "args": (),
                "kwargs": {},
                "started": timezone.now(),
            }
        )
        done = self.results.get(timeout=10)
        if not done["success"]:
            raise JobFailed(done["result"])
        return str(done["result"])

    def run(self) -> str:
        return self.perform(connection_id)

    def stop(self) -> None:
        self.perform(close_connections)
        self.tasks.put("STOP")
        self.thread.join(10)


@pytest.fixture
def worker(wait_timeout: Callable[[int], None], admin: Any, unblocked_db: None) -> Iterator[Worker]:
    with (
        override_settings(
            INSTALLED_APPS=[*settings.INSTALLED_APPS, "django_q"],
            Q_CLUSTER={"name": "tests", "timeout": 60, "retry": 120},
        ),
        idle_spell(wait_timeout, admin),
    ):
        made = Worker()
        yield made
        made.stop()


@pytest.fixture
def hooked(worker: Worker) -> Iterator[None]:
    from pa_dbhealth.jobs import django_q

    django_q.connect_signals()
    yield
    django_q.disconnect_signals()


def test_a_task_after_the_worker_idled_gets_a_live_connection(hooked: None, worker: Worker) -> None:
    assert_kept_then_replaced(worker.run)


def test_control_without_the_signals_the_task_meets_the_dropped_connection(
    worker: Worker,
) -> None:
    assert_meets_the_dropped_connection(worker.run)
