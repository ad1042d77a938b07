"""django-q2: the staleness rule around every task, through ``pre_execute`` and
``post_execute_in_worker`` (both sent in the worker that runs the task; ``post_execute``
is sent in the monitor).

In an ``AppConfig.ready()`` of the project::

    pa_dbhealth.jobs.django_q.connect_signals()

django-q2's worker calls Django's ``close_old_connections()`` before each task: it closes
connections past ``CONN_MAX_AGE`` but reuses one the server has dropped.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from pa_dbhealth import hygiene
from pa_dbhealth.jobs import after_job, before_job

PRE = "pa_dbhealth.jobs.django_q.pre_execute"
POST = "pa_dbhealth.jobs.django_q.post_execute_in_worker"


def connect_signals() -> None:
    """Apply the rule before and after every task of this cluster (calling it again is
    harmless). Needs django-q2 1.10 or later."""
    hygiene.require_app("pa_dbhealth.jobs.django_q")
    from django_q import signals

    if not hasattr(signals, "post_execute_in_worker"):
        raise ImproperlyConfigured(
            "pa_dbhealth.jobs.django_q needs django-q2 1.10 or later (its "
            "post_execute_in_worker signal); upgrade django-q2."
        )
    signals.pre_execute.connect(before_job, dispatch_uid=PRE)
    signals.post_execute_in_worker.connect(after_job, dispatch_uid=POST)


def disconnect_signals() -> None:
    from django_q import signals

    signals.pre_execute.disconnect(dispatch_uid=PRE)
    signals.post_execute_in_worker.disconnect(dispatch_uid=POST)
