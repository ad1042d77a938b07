"""Where this process's SQLAlchemy face writes the registry of holders, for a test."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pa_dbhealth.sqlalchemy import holding


@contextmanager
def writing_to(place: Path) -> Iterator[Path]:
    """This process's installed engines publish to ``place`` until the block ends; then
    what they still hold is published where they wrote before."""
    before = holding._place
    holding._place = place
    try:
        yield place
    finally:
        holding._place = before
        holding.publish()
