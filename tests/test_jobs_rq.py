"""RQ: the job class pa_dbhealth.jobs.rq.FreshConnectionsJob applies the staleness rule
around every job. django-rq's worker, configured as the README says (RQ["JOB_CLASS"]), a
SimpleWorker (one process runs job after job) in burst mode in this thread, on a Redis of
the test's own."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

django_rq = pytest.importorskip("django_rq")

from django.test import override_settings  # noqa: E402
from jobsupport import (  # noqa: E402
    JobFailed,
    assert_kept_then_replaced,
    assert_meets_the_dropped_connection,
    close_connections,
    connection_id,
    idle_spell,
    redis_server,
)
from rq import SimpleWorker  # noqa: E402

from pa_dbhealth.jobs.rq import FreshConnectionsJob  # noqa: E402

JOB_CLASS = "pa_dbhealth.jobs.rq.FreshConnectionsJob"


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


class Worker:
    """django-rq's queue and worker for the "default" queue, as the settings say."""

    def __init__(self) -> None:
        self.queue = django_rq.get_queue("default")
        self.worker = django_rq.get_worker("default")

    def perform(self, func: Callable[[], str]) -> str:
        job = self.queue.enqueue(func)
        self.worker.work(burst=True)  # runs what is queued, here, then returns
        job.refresh()
        if job.is_failed:
            result = job.latest_result()
            raise JobFailed(result.exc_string if result else "failed")
        return str(job.return_value())

    def run(self) -> str:
        return self.perform(connection_id)


class SimpleWorkerWithoutCommands(SimpleWorker):
    """RQ's SimpleWorker without the pub/sub thread that listens for remote commands: when
    its burst ends, RQ 3.0 closes that thread's connection while it may still wait up to
    60 s for a message, and a 60 s pause between two jobs is longer than the test's 3 s
    wait_timeout. The jobs, the job class and the connections are RQ's own."""

    def subscribe(self) -> None:
        pass

    def unsubscribe(self) -> None:
        pass


def rq_settings(redis_url: str, **rq: str) -> override_settings:
    return override_settings(
        RQ_QUEUES={"default": {"URL": redis_url}},
        RQ={"WORKER_CLASS": f"{__name__}.SimpleWorkerWithoutCommands", **rq},
    )


@pytest.fixture
def idle(wait_timeout: Callable[[int], None], admin: Any, unblocked_db: None) -> Iterator[None]:
    with idle_spell(wait_timeout, admin):
        yield


def test_the_setting_gives_the_worker_the_job_class(redis_url: str) -> None:
    with rq_settings(redis_url, JOB_CLASS=JOB_CLASS):
        worker = Worker()
    assert isinstance(worker.worker, SimpleWorker)
    assert worker.worker.job_class is FreshConnectionsJob
    assert worker.queue.job_class is FreshConnectionsJob


def test_a_job_after_the_worker_idled_gets_a_live_connection(redis_url: str, idle: None) -> None:
    with rq_settings(redis_url, JOB_CLASS=JOB_CLASS):
        worker = Worker()
        assert_kept_then_replaced(worker.run)
        worker.perform(close_connections)


def test_control_with_rqs_job_class_the_job_meets_the_dropped_connection(
    redis_url: str, idle: None
) -> None:
    with rq_settings(redis_url):
        worker = Worker()
        assert_meets_the_dropped_connection(worker.run)
        worker.perform(close_connections)
