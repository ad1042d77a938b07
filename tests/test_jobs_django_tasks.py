"""django.tasks (Django 6.0+): the app applies the staleness rule around every task through
task_started/task_finished. Django ships no worker of its own (6.1: ImmediateBackend and
DummyBackend), so tasks run with the ImmediateBackend, in the caller's thread."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("django.tasks", reason="django.tasks needs Django 6.0 or later")

from django.tasks import TaskResultStatus, task
from jobsupport import (
    JobFailed,
    assert_kept_then_replaced,
    assert_meets_the_dropped_connection,
    close_connections,
    connection_id,
    idle_spell,
)

from pa_dbhealth.jobs import django_tasks


@task
def connection_id_task() -> str:
    return connection_id()


@task
def close_task() -> str:
    return close_connections()


def run() -> str:
    result = connection_id_task.enqueue()
    if result.status != TaskResultStatus.SUCCESSFUL:
        raise JobFailed(result.errors[0].traceback)
    return str(result.return_value)


@pytest.fixture
def idle(wait_timeout: Callable[[int], None], admin: Any, unblocked_db: None) -> Iterator[None]:
    with idle_spell(wait_timeout, admin):
        yield
        close_task.enqueue()


def test_a_task_after_the_worker_idled_gets_a_live_connection(idle: None) -> None:
    assert_kept_then_replaced(run)


def test_control_without_the_signals_the_task_meets_the_dropped_connection(idle: None) -> None:
    django_tasks.uninstall()
    try:
        assert_meets_the_dropped_connection(run)
    finally:
        django_tasks.install()
