"""Django system checks.

``PA_DBHEALTH`` itself is checked everywhere (no database needed). The checks that ask
the server are tagged ``database``: Django runs them only for ``check --database ALIAS``
and ``migrate``, so they never stop a site from serving.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.core.checks import CheckMessage, Tags, register

from pa_dbhealth import conf
from pa_dbhealth.core import findings
from pa_dbhealth.core.findings import Finding
from pa_dbhealth.core.options import Problem

_SETTINGS_FINDINGS = {
    "type": findings.settings_not_a_mapping,
    "unknown": findings.settings_unknown_key,
    "value": findings.settings_bad_value,
}


def settings_findings(problems: Iterable[Problem]) -> list[Finding]:
    """E001 (not a dict), E002 (an unknown key), E003 (a bad value): one per problem."""
    return [_SETTINGS_FINDINGS[p.kind](p.message, p.hint) for p in problems]


def as_check_message(finding: Finding) -> CheckMessage:
    return CheckMessage(int(finding.level), finding.message, hint=finding.hint, id=finding.id)


@register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E001: PA_DBHEALTH is not a dict; E002: an unknown key; E003: a bad value."""
    return [as_check_message(f) for f in settings_findings(conf.problems())]


@register(Tags.database)
def check_databases(
    app_configs: Any = None, *, databases: Sequence[str] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """The audit of each alias against its live server (``check --database ALIAS``, ``migrate``)."""
    if not databases:
        return []
    from pa_dbhealth.audit import audit_alias, site_findings

    messages = [as_check_message(finding) for finding in site_findings()]
    for alias in databases:
        messages.extend(as_check_message(finding) for finding in audit_alias(alias).findings)
    return messages
