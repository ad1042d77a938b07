"""What a finding is, and the errors users meet in each vendor's words."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class Level(enum.IntEnum):
    """The same numbers as Django's check levels, so a face can pass them on as they are."""

    INFO = 20
    WARNING = 30
    ERROR = 40

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Finding:
    id: str
    level: Level
    message: str
    hint: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "level": self.level.label,
            "message": self.message,
            "hint": self.hint,
        }


# The errors users meet, in each vendor's words (no MySQL error for a PostgreSQL server).
_LOST = {
    "mysql": "(2006, 'MySQL server has gone away')",
    "postgresql": "'terminating connection due to idle-session timeout'",
}
_CAP = {
    "mysql": "(1226, 'max_user_connections')",
    "postgresql": "'too many connections for role'",
}


def lost_error(vendor: str) -> str:
    return _LOST.get(vendor, "a lost-connection error")


def cap_error(vendor: str) -> str:
    return _CAP.get(vendor, "a too-many-connections error")
