"""The tracker's share of the audit of what pins a connection behind a multiplexer
(:mod:`pa_dbhealth.core.pins`): a statement the cheap test lets through is classified and
counted at the app's own line that ran it (:mod:`pa_dbhealth.core.pin_log`)."""

from __future__ import annotations

import sys
from typing import Any

from pa_dbhealth import holders
from pa_dbhealth.core import pin_log, pins
from pa_dbhealth.tracker.records import origins


def note(sql: str, connection: Any) -> None:
    """Count ``sql`` at the first frame outside Django and pa_dbhealth, if it pins (the
    frame and the directory are looked for only then: they cost more than the test)."""
    found = pins.classify(sql, connection.vendor)
    if found is None:
        return
    site, _ = origins.where(sys._getframe(1))
    directory = pin_log.pins_directory(holders.directory())
    pin_log.count(found, connection.vendor, site, directory)
