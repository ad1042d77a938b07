"""The SQLAlchemy face of the audit of what pins a connection behind a multiplexer
(:mod:`pa_dbhealth.core.pins`): a ``before_cursor_execute`` listener that lets the cheap
test judge each statement, and counts one that pins at the app's own line
(:mod:`pa_dbhealth.core.pin_log`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from pa_dbhealth.core import pin_log, pins, registry
from pa_dbhealth.core.options import Options
from pa_dbhealth.sqlalchemy.tracker import ORIGINS


def listen(engine: Engine, vendor: str, options: Options) -> None:
    """Judge ``engine``'s statements (only a MySQL or PostgreSQL engine's, and only when
    ``PIN_RULES`` names a multiplexer)."""
    if vendor not in pins.FAMILIES or not options.pin_rules():
        return
    directory = pin_log.pins_directory(registry.directory(options.REGISTRY_DIR))
    event.listen(engine, "before_cursor_execute", _judge(vendor, directory))


def _judge(vendor: str, directory: Path | None) -> Any:
    def locate() -> tuple[str | None, Path | None]:
        site, _ = ORIGINS.where(sys._getframe())  # pa_dbhealth's and SQLAlchemy's skipped
        return site, directory

    def before_cursor_execute(
        conn: Any, cursor: Any, statement: Any, parameters: Any, context: Any, many: bool
    ) -> None:
        if type(statement) is str and pins.suspect(statement):
            pin_log.note(statement, vendor, locate)

    return before_cursor_execute
