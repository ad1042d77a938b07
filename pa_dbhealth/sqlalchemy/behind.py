"""The SQLAlchemy face of what matters behind a multiplexer (``core.behind``): whether an
engine connects through one, and the pins the app's code made (``core.pin_log``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine

from pa_dbhealth.core import behind, pin_log, registry
from pa_dbhealth.core.audit import Audit
from pa_dbhealth.core.behind import Between
from pa_dbhealth.core.findings import Finding
from pa_dbhealth.core.look import LookTimedOut
from pa_dbhealth.core.options import Options
from pa_dbhealth.core.vendors import pooler
from pa_dbhealth.sqlalchemy.engine_look import look_at_engine
from pa_dbhealth.sqlalchemy.engines import database_errors, engine_vendor
from pa_dbhealth.sqlalchemy.wording import Wording

__all__ = ["findings_for", "judge_behind", "pin_findings"]


def findings_for(
    engine: Engine, who: str, options: Options
) -> tuple[Between | None, list[Finding]]:
    """I036, W037 and E034 for ``engine`` when something stands in between."""
    vendor = engine_vendor(engine)

    def ask(raw: Any) -> tuple[pooler.ServerPlace, bool]:
        return pooler.server_place(raw, vendor), pooler.prepares_statements(raw)

    errors: tuple[type[BaseException], ...] = (LookTimedOut, *database_errors(engine))
    try:
        place, prepares = look_at_engine(engine, ask, timeout=options.HEALTH_CONNECT_TIMEOUT)
    except errors:
        return None, []
    url = engine.url
    port = behind.configured_port(vendor, url.query.get("unix_socket") or url.host, url.port)

    def console() -> pooler.PgBouncerFacts | None:
        address = {"host": url.host, "port": url.port, "user": url.username}
        address["password"] = url.password
        seconds = options.HEALTH_CONNECT_TIMEOUT
        return pooler.ask_pgbouncer(engine.dialect.loaded_dbapi, address, seconds)

    found = behind.notice(vendor, port, place, console if vendor == "postgresql" else None)
    if found is None:
        return None, []
    prepared = None
    if prepares:
        prepared = (
            "Pass connect_args={'prepare_threshold': None} to create_engine, or run PgBouncer "
            "1.21 or later with max_prepared_statements > 0."
        )
    # SQLAlchemy declares no server-side cursor unless asked (stream_results): no W037.
    return found, behind.judge(
        who, found, kept="pool_recycle", server_side_cursors=None, prepares=prepared
    )


def judge_behind(
    engine: Engine, who: str, options: Options, result: Audit, wording: Wording
) -> bool:
    """Add what matters behind a multiplexer to ``result`` (W006's fix becomes the check
    with a round trip: the socket check sees only the link to the pooler); whether one is
    in between."""
    pooler, found = findings_for(engine, who, options)
    result.findings += found
    if pooler is None:
        return False
    result.server["pooler"] = pooler.as_dict()
    fix = (
        f"Set {wording.set_one('pool_pre_ping', True)}: behind {pooler.name} the socket check "
        "sees only the link to it, not the server's idle kill."
    )
    result.findings = behind.socket_check_blind(result.findings, fix)
    return True


def pin_findings(options: Options) -> list[Finding]:
    """W035: what this site's processes ran that pins a multiplexer's connections."""
    rules = options.pin_rules()
    if not rules:
        return []
    found = pin_log.read_all(pin_log.pins_directory(registry.directory(options.REGISTRY_DIR)))
    return behind.pin_findings(found, rules)
