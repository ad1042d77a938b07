"""The Django face of what matters behind a multiplexer (``core.behind``): whether an
alias connects through one, and the pins the app's code made (``core.pin_log``)."""

from __future__ import annotations

from typing import Any

from django.db import DatabaseError, connections

from pa_dbhealth import conf, holders
from pa_dbhealth.alias_look import look_at_alias
from pa_dbhealth.core import behind, pin_log
from pa_dbhealth.core.behind import Between
from pa_dbhealth.core.findings import Finding
from pa_dbhealth.core.look import LookTimedOut
from pa_dbhealth.core.vendors import pooler

__all__ = ["between", "findings_for", "kept_behind", "pin_findings"]


def between(alias: str) -> tuple[Between | None, bool]:
    """What stands between ``alias`` and its server (None: nothing seen), and whether the
    driver prepares statements on the server by itself."""
    connection = connections[alias]
    db, vendor = connection.settings_dict, connection.vendor

    def ask(raw: Any) -> tuple[pooler.ServerPlace, bool]:
        return pooler.server_place(raw, vendor), pooler.prepares_statements(raw)

    try:
        place, prepares = look_at_alias(alias, ask)
    except (DatabaseError, LookTimedOut):
        return None, False
    port = behind.configured_port(vendor, db.get("HOST"), db.get("PORT"))
    console = (lambda: _pgbouncer(connection)) if vendor == "postgresql" else None
    return behind.notice(vendor, port, place, console), prepares


def _pgbouncer(connection: Any) -> pooler.PgBouncerFacts | None:
    """PgBouncer's admin console, at the alias's own address with its credentials."""
    seconds = conf.get_settings().HEALTH_CONNECT_TIMEOUT
    params = connection.get_connection_params()
    return pooler.ask_pgbouncer(connection.Database, params, seconds)


def findings_for(alias: str) -> tuple[Between | None, list[Finding]]:
    """I036, W037 and E034 for ``alias`` when something stands in between."""
    found, prepares = between(alias)
    if found is None:
        return None, []
    db = connections[alias].settings_dict
    who = f"DATABASES[{alias!r}]"
    cursors = None
    if connections[alias].vendor == "postgresql" and not db.get("DISABLE_SERVER_SIDE_CURSORS"):
        cursors = f"Set {who}['DISABLE_SERVER_SIDE_CURSORS'] = True."
    prepared = None
    if prepares:
        prepared = (
            f"Set {who}['OPTIONS']['prepare_threshold'] = None, or run PgBouncer 1.21 or later "
            "with max_prepared_statements > 0."
        )
    return found, behind.judge(
        who, found, kept="CONN_MAX_AGE", server_side_cursors=cursors, prepares=prepared
    )


def kept_behind(alias: str, pooler: Between, found: list[Finding]) -> list[Finding]:
    """W006's fix behind a pooler: Django's check with a round trip, since the middleware's
    socket check sees only the link to the pooler."""
    fix = (
        f"Set DATABASES[{alias!r}]['CONN_HEALTH_CHECKS'] = True: behind {pooler.name} the "
        "middleware's socket check sees only the link to it, not the server's idle kill."
    )
    return behind.socket_check_blind(found, fix)


def pin_findings() -> list[Finding]:
    """W035: what this site's processes ran that pins a multiplexer's connections."""
    rules = conf.get_settings().pin_rules()
    if not rules:
        return []
    found = pin_log.read_all(pin_log.pins_directory(holders.directory()))
    return behind.pin_findings(found, rules)
