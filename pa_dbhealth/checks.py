"""Django system checks.

``PA_DBHEALTH`` itself is checked everywhere (no database needed). The checks that ask
the server are tagged ``database``: Django runs them only for ``check --database ALIAS``
and ``migrate``, so they never stop a site from serving.
"""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, register

from pa_dbhealth import conf

SETTINGS_IDS = {
    "type": "pa_dbhealth.E001",
    "unknown": "pa_dbhealth.E002",
    "value": "pa_dbhealth.E003",
}


@register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E001: PA_DBHEALTH is not a dict; E002: an unknown key; E003: a bad value."""
    return [
        Error(problem.message, hint=problem.hint, id=SETTINGS_IDS[problem.kind])
        for problem in conf.problems()
    ]
