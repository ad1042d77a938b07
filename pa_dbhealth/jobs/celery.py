"""Celery: the staleness rule around every task, through ``task_prerun`` and
``task_postrun`` (sent in the thread that runs the task, whatever the pool).

In the module that creates the Celery app::

    import pa_dbhealth.jobs.celery

    pa_dbhealth.jobs.celery.connect_signals()

Celery's Django fix-up closes every connection around each task unless
``CELERY_DB_REUSE_MAX`` keeps them between tasks; then, and in a Celery app made before
``DJANGO_SETTINGS_MODULE`` is set (no fix-up), this is what keeps a kept connection alive.
"""

from __future__ import annotations

from celery.signals import task_postrun, task_prerun

from pa_dbhealth import hygiene
from pa_dbhealth.jobs import after_job, before_job

PRERUN = "pa_dbhealth.jobs.celery.prerun"
POSTRUN = "pa_dbhealth.jobs.celery.postrun"


def connect_signals() -> None:
    """Apply the rule before and after every task of this process (calling it again is
    harmless)."""
    hygiene.require_app("pa_dbhealth.jobs.celery")
    task_prerun.connect(before_job, weak=False, dispatch_uid=PRERUN)
    task_postrun.connect(after_job, weak=False, dispatch_uid=POSTRUN)


def disconnect_signals() -> None:
    task_prerun.disconnect(before_job, dispatch_uid=PRERUN)
    task_postrun.disconnect(after_job, dispatch_uid=POSTRUN)
