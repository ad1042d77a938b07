"""RQ: a job class that applies the staleness rule before and after the job it performs.

``rq worker --job-class pa_dbhealth.jobs.rq.FreshConnectionsJob`` (django-rq:
``RQ = {"JOB_CLASS": "pa_dbhealth.jobs.rq.FreshConnectionsJob"}``). It matters where one
process runs job after job (``SimpleWorker``, ``rqworker --worker-class
rq.SimpleWorker``); RQ's default ``Worker`` forks a process per job, whose connections end
with it.
"""

from __future__ import annotations

from typing import Any

from rq.job import Job

from pa_dbhealth.jobs import after_job, before_job


class FreshConnectionsJob(Job):
    """An RQ ``Job`` whose ``perform()`` closes the worker thread's stale connections
    before the job runs and after it (also when it raises)."""

    def perform(self) -> Any:
        before_job()
        try:
            return super().perform()
        finally:
            after_job()
