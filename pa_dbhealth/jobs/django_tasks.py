"""django.tasks (Django 6.0+): the staleness rule around every task, wired by the app.

``task_started`` and ``task_finished`` are sent in the thread that runs the task, by
Django's ``ImmediateBackend`` (in the caller) and by third-party backends' workers alike.
"""

from __future__ import annotations

from pa_dbhealth.jobs import after_job, before_job

STARTED = "pa_dbhealth.jobs.django_tasks.started"
FINISHED = "pa_dbhealth.jobs.django_tasks.finished"


def available() -> bool:
    """Whether this Django has ``django.tasks`` (6.0+)."""
    try:
        import django.tasks  # noqa: F401
    except ImportError:
        return False
    return True


def install() -> None:
    """Connect the rule to ``task_started`` and ``task_finished`` where ``django.tasks``
    exists (``AppConfig.ready`` calls this; calling it again is harmless)."""
    if not available():
        return
    from django.tasks.signals import task_finished, task_started

    task_started.connect(before_job, dispatch_uid=STARTED)
    task_finished.connect(after_job, dispatch_uid=FINISHED)


def uninstall() -> None:
    """Disconnect them again (for tests that show what happens without)."""
    if not available():
        return
    from django.tasks.signals import task_finished, task_started

    task_started.disconnect(dispatch_uid=STARTED)
    task_finished.disconnect(dispatch_uid=FINISHED)
