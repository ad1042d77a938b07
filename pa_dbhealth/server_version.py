"""The server's version against the running Django, for ``dbcheck``, ``check --database`` and
the status page (through :func:`pa_dbhealth.audit.audit_alias`).

A Django too new for the server refuses every connection (``NotSupportedError``), the
audit's look included. The version is then read without Django's connection: the driver
connects once with the alias's own parameters and the server's greeting names its version,
with no query sent.
"""

from __future__ import annotations

import re

import django
from django.db import NotSupportedError, connections

from pa_dbhealth.core import findings, server_support
from pa_dbhealth.core.findings import Finding
from pa_dbhealth.core.look import connect_timeout_options

RELEASE = (django.VERSION[0], django.VERSION[1])


# Django's words when it refuses the server's version (BaseDatabaseWrapper, 4.2 to 6.1).
REFUSAL = re.compile(r"\bor later is required \(found [\d.]+\)")


def refused_in(detail: str | None) -> bool:
    """Whether a failure's text (``DatabaseHealth.detail``) is Django refusing the server's
    version: the page's audit then asks again, to say which version and what to do."""
    return bool(detail and REFUSAL.search(detail))


class Refused(Exception):
    """Django refused to connect to the server: its version, most likely."""

    def __init__(self, error: NotSupportedError) -> None:
        super().__init__(str(error))
        self.error = error


def version_findings(who: str, version: str) -> list[Finding]:
    """E031/I033 for the server that says ``version``, judged by the running Django."""
    return server_support.version_findings(who, RELEASE, version)


def driver_version(alias: str, seconds: float) -> str | None:
    """The version the alias's server gives in its greeting, read by the driver alone (one
    attempt, at most ``seconds`` to connect); None when it cannot connect."""
    import MySQLdb  # what Django's MySQL backend connects with (PyMySQL may stand in)

    probe = connections.create_connection(alias)
    params = {**probe.get_connection_params(), **connect_timeout_options("mysql", seconds)}
    try:
        raw = MySQLdb.connect(**params)
    except MySQLdb.Error:
        return None
    try:
        return str(raw.get_server_info())
    finally:
        raw.close()


def refused_findings(alias: str, who: str, refused: Refused, seconds: float) -> list[Finding]:
    """Why Django refused the alias's server: E031 with the version read by the driver, or
    E018 with Django's own words when the version does not explain it."""
    version = driver_version(alias, seconds)
    found = [] if version is None else version_findings(who, version)
    if any(f.level >= findings.Level.ERROR for f in found):
        return found
    fix = "Run a Django release that supports the server, or move the database to a newer one."
    return [findings.cannot_connect(who, str(refused.error), fix)]
