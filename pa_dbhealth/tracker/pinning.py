"""The tracker's share of the audit of what pins a connection behind a multiplexer
(:mod:`pa_dbhealth.core.pins`): a statement the cheap test lets through is classified and
counted at the app's own line that ran it (:mod:`pa_dbhealth.core.pin_log`)."""

from __future__ import annotations

import sys
from typing import Any

from pa_dbhealth import holders
from pa_dbhealth.core import pin_log
from pa_dbhealth.tracker.records import origins


def note(sql: str, connection: Any) -> None:
    """Count ``sql`` at the first frame outside Django and pa_dbhealth, if it pins."""
    site, _ = origins.where(sys._getframe(1))
    pin_log.note(sql, connection.vendor, site, pin_log.pins_directory(holders.directory()))
