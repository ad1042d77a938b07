from django.apps import AppConfig


class PaDbHealthConfig(AppConfig):
    name = "pa_dbhealth"
    verbose_name = "Database connection health"

    def ready(self) -> None:
        from pa_dbhealth import (
            checks,  # noqa: F401  (registers the system checks)
            hygiene,
            leases,
            tracker,
        )
        from pa_dbhealth.jobs import django_tasks

        tracker.install()
        hygiene.install()
        leases.install()
        django_tasks.install()
