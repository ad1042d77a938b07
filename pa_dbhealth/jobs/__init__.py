"""The staleness rule around background jobs: before each job and after it.

A worker runs one job after another in a long-lived thread and may then wait minutes or
hours for the next. Its connections age between jobs as a web worker's do between
requests, but none of Django's request-time rules reach it: the first job after a quiet
spell meets a connection the server has dropped, ``(2006, 'MySQL server has gone away')``
(4031 on MySQL 8). :func:`before_job` and :func:`after_job` apply :mod:`pa_dbhealth.hygiene`'s
rule to the worker thread's connections (dead, obsolete, broken or idle past the server's
timeout; never inside an atomic block, never with a cursor open), so connections are kept
between jobs as ``CONN_MAX_AGE`` says, as between requests, and never reused dead.

Each runner gets them through its own hook, one line in the project:

- ``django.tasks`` (Django 6.0+): nothing to add, the app connects ``task_started`` and
  ``task_finished`` (:mod:`pa_dbhealth.jobs.django_tasks`);
- Celery: ``pa_dbhealth.jobs.celery.connect_signals()`` (``task_prerun``/``task_postrun``);
- RQ: the job class ``pa_dbhealth.jobs.rq.FreshConnectionsJob``;
- django-q2: ``pa_dbhealth.jobs.django_q.connect_signals()`` (``pre_execute``,
  ``post_execute_in_worker``);
- Huey: ``pa_dbhealth.jobs.huey.connect(huey)`` (``pre_execute``/``post_execute`` hooks);
- APScheduler: ``@fresh_connections`` on the job function (no event reaches a listener in
  the job's thread before the job runs: submission is announced from the scheduler's).
"""

from __future__ import annotations

from typing import Any

from pa_dbhealth import hygiene, tracker

__all__ = ["after_job", "before_job"]


def before_job(*args: Any, **kwargs: Any) -> None:
    """Close the worker thread's stale connections before a job. Takes whatever the
    runner's hook passes (a signal's sender and keywords, a task)."""
    hygiene.require_app("pa_dbhealth.jobs")
    tracker.mark_holder()  # a worker thread is expected to hold connections
    hygiene.refresh_connections()


def after_job(*args: Any, **kwargs: Any) -> None:
    """Close the worker thread's stale connections after a job (an obsolete one, with
    ``CONN_MAX_AGE = 0``, is not held while the worker waits)."""
    hygiene.refresh_connections()
