"""pa_dbhealth.jobs: what every runner's hook shares (each runner: tests/test_jobs_*.py)."""

from __future__ import annotations

import threading
from typing import Any

import django
import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.test import override_settings

from pa_dbhealth import tracker
from pa_dbhealth.jobs import after_job, before_job, django_tasks


def in_thread(target: Any) -> None:
    thread = threading.Thread(target=target)
    thread.start()
    thread.join(10)


def test_a_worker_thread_that_runs_the_hook_is_expected_to_hold_connections(
    unblocked_db: None,
) -> None:
    """A connection held by a thread that is neither a request's nor the main one is logged
    as a probable leak, unless the thread says it holds connections on purpose."""

    def job(hooked: bool) -> None:
        if hooked:
            before_job()
        connections["default"].ensure_connection()
        tracker.open_connections()  # the tracker judges the holders now
        after_job()
        connections["default"].close()

    leaks = tracker.figures()["leaks"]
    in_thread(lambda: job(hooked=True))
    assert tracker.figures()["leaks"] == leaks
    in_thread(lambda: job(hooked=False))
    assert tracker.figures()["leaks"] == leaks + 1


def test_the_hooks_need_the_app() -> None:
    without = [app for app in settings.INSTALLED_APPS if app != "pa_dbhealth"]
    with override_settings(INSTALLED_APPS=without), pytest.raises(ImproperlyConfigured) as caught:
        before_job()
    assert "pa_dbhealth.jobs needs 'pa_dbhealth' in INSTALLED_APPS" in str(caught.value)


def test_django_tasks_is_wired_only_where_django_has_it() -> None:
    assert django_tasks.available() is (django.VERSION >= (6, 0))
    django_tasks.install()  # harmless where django.tasks does not exist
    django_tasks.uninstall()
    django_tasks.install()
