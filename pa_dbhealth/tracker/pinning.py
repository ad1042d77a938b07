"""The tracker's share of the audit of what pins a connection behind a multiplexer
(:mod:`pa_dbhealth.core.pins`): a statement the cheap test lets through is classified and
counted at the app's own line that ran it (:mod:`pa_dbhealth.core.pin_log`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pa_dbhealth import holders
from pa_dbhealth.core import pin_log
from pa_dbhealth.tracker.records import origins


def note(sql: str, connection: Any) -> None:
    """Count ``sql`` at the first frame outside Django and pa_dbhealth, if it pins."""
    pin_log.note(sql, connection.vendor, _locate)


def _locate() -> tuple[str | None, Path | None]:
    site, _ = origins.where(sys._getframe())  # pa_dbhealth's frames are skipped
    return site, pin_log.pins_directory(holders.directory())
