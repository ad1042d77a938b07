"""Huey: the staleness rule around every task, through Huey's ``pre_execute`` and
``post_execute`` hooks (run by the consumer's worker that runs the task).

Where the Huey instance is made (with Django: ``from huey.contrib.djhuey import HUEY``)::

    pa_dbhealth.jobs.huey.connect(HUEY)

``djhuey``'s ``db_task`` calls Django's ``close_old_connections()`` around a task: it
closes connections past ``CONN_MAX_AGE`` but reuses one the server has dropped; plain
``@huey.task()`` tasks get nothing.
"""

from __future__ import annotations

from typing import Any

from pa_dbhealth import hygiene
from pa_dbhealth.jobs import after_job, before_job

NAME = "pa_dbhealth"  # the hooks' name in the Huey instance


def connect(huey: Any) -> None:
    """Apply the rule before and after every task ``huey`` runs (calling it again is
    harmless: the hooks are registered by name)."""
    hygiene.require_app("pa_dbhealth.jobs.huey")
    huey.pre_execute(name=NAME)(before_job)
    huey.post_execute(name=NAME)(after_job)


def disconnect(huey: Any) -> None:
    huey.unregister_pre_execute(NAME)
    huey.unregister_post_execute(NAME)
