"""Django system checks.

``PA_DBHEALTH`` itself is checked everywhere (no database needed). The checks that ask
the server are tagged ``database``: Django runs them only for ``check --database ALIAS``
and ``migrate``, so they never stop a site from serving.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Tags, register
from django.core.exceptions import ImproperlyConfigured
from django.db import connections

from pa_dbhealth import conf, half_switched
from pa_dbhealth.core import findings
from pa_dbhealth.core.findings import Finding

settings_findings = findings.settings_findings  # E001, E002, E003, W029: one per problem


def as_check_message(finding: Finding) -> CheckMessage:
    return CheckMessage(int(finding.level), finding.message, hint=finding.hint, id=finding.id)


@register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E001: PA_DBHEALTH is not a dict; E002: an unknown key; E003: a bad value; W029: a
    weak one (a short HEALTH_TOKEN)."""
    return [as_check_message(f) for f in settings_findings(conf.problems())]


# Servers that run ASGI applications: loaded in this process, they are serving the site.
ASGI_SERVERS = ("uvicorn", "hypercorn", "daphne", "granian")


def asgi_evidence() -> str | None:
    """What shows the site is served through ASGI, or None.

    ``ASGI_APPLICATION`` (Channels and Daphne need it), or, in the process serving the site,
    the project's ``asgi`` module (beside its settings module, as ``startproject`` lays it
    out) or an ASGI server. That an ``asgi.py`` exists shows nothing: ``startproject``
    writes one next to ``wsgi.py`` for every project.
    """
    configured = getattr(settings, "ASGI_APPLICATION", None)
    if configured:
        return f"ASGI_APPLICATION = {configured!r}"
    package = str(getattr(settings, "SETTINGS_MODULE", "") or "").rpartition(".")[0]
    if package and f"{package}.asgi" in sys.modules:
        return f"{package}.asgi is loaded"
    for server in ASGI_SERVERS:
        if server in sys.modules:
            return f"this process runs {server}"
    return None


def asgi_findings() -> list[Finding]:
    """W021: CONN_MAX_AGE > 0 (or None) on an alias of a site served through ASGI."""
    evidence = asgi_evidence()
    if evidence is None:
        return []
    from pa_dbhealth.middleware import MIDDLEWARE_PATH

    middleware = MIDDLEWARE_PATH in getattr(settings, "MIDDLEWARE", [])
    found = []
    for alias, entry in connections.settings.items():
        max_age = entry.get("CONN_MAX_AGE", 0)
        if max_age == 0 or connections[alias].vendor == "sqlite":
            continue
        setting = f"DATABASES[{alias!r}]['CONN_MAX_AGE']"
        fix = (
            f"Set {setting} = 0: persistent connections need WSGI (on PostgreSQL with Django "
            "5.1+, use its connection pool: OPTIONS {'pool': True})."
            + (
                f" Until then {MIDDLEWARE_PATH} closes each request's connections when it ends."
                if middleware
                else f" Add {MIDDLEWARE_PATH!r} near the top of MIDDLEWARE: under ASGI it "
                "closes each request's connections when it ends."
            )
        )
        found.append(findings.kept_under_asgi(setting, repr(max_age), evidence, fix))
    return found


@register()
def check_asgi_persistent_connections(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W021, everywhere: it needs no server."""
    return [as_check_message(finding) for finding in asgi_findings()]


def parking_findings() -> list[Finding]:
    """W039: PARK asked for where it can do nothing (LINE off, or no alias it applies to)."""
    from pa_dbhealth.audit import RETRYING_ENGINE

    options = conf.get_settings()
    if not options.PARK:
        return []
    if not options.LINE:
        return [
            findings.park_without_effect(
                "PA_DBHEALTH['LINE'] = False: only the line tells a parked connection that "
                "someone waits for it",
                "Remove PA_DBHEALTH['LINE'] (it defaults to True), or remove PARK.",
            )
        ]
    parkable = [
        alias
        for alias, entry in connections.settings.items()
        if entry.get("ENGINE") == RETRYING_ENGINE and entry.get("CONN_MAX_AGE", 0) == 0
    ]
    if parkable:
        return []
    return [
        findings.park_without_effect(
            f"no DATABASES entry has ENGINE = {RETRYING_ENGINE!r} with CONN_MAX_AGE = 0",
            f"Set ENGINE = {RETRYING_ENGINE!r} and CONN_MAX_AGE = 0 on your MySQL entry.",
        )
    ]


@register()
def check_parking(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W039, everywhere: it needs no server."""
    return [as_check_message(finding) for finding in parking_findings()]


@register()
def check_half_switched_databases(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E025/W026, everywhere: a MySQL entry whose NAME, HOST or USER cannot be right, found
    without connecting (the database-tagged audit leaves them to this check)."""
    messages = []
    for alias in connections:
        try:
            connection = connections[alias]
        except ImproperlyConfigured:  # a missing driver or backend: Django says so itself
            continue
        found = half_switched.half_switched(alias, connection.settings_dict, connection.vendor)
        if found is not None:
            messages.append(as_check_message(found))
    return messages


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
        found = audit_alias(alias).findings
        messages += [as_check_message(f) for f in found if f.id not in half_switched.IDS]
    return messages
