"""Django system checks.

``PA_DBHEALTH`` itself is checked everywhere (no database needed). The checks that ask
the server are tagged ``database``: Django runs them only for ``check --database ALIAS``
and ``migrate``, so they never stop a site from serving.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.core.checks import CheckMessage, Error, Tags, register

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


@register(Tags.database)
def check_databases(
    app_configs: Any = None, *, databases: Sequence[str] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """The audit of each alias against its live server (``check --database ALIAS``, ``migrate``)."""
    if not databases:
        return []
    from pa_dbhealth.audit import audit_alias, site_findings

    messages = [finding.as_check_message() for finding in site_findings()]
    for alias in databases:
        messages.extend(finding.as_check_message() for finding in audit_alias(alias).findings)
    return messages
