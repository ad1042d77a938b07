"""The one rule of staleness: when a connection must be closed before it is used again."""

from __future__ import annotations

from typing import NamedTuple


class IdleLimit(NamedTuple):
    seconds: float  # a connection idle this long counts as stale
    clamped: bool  # TIMEOUT_MARGIN was not smaller than the timeout: half the timeout is used


def idle_limit(server_timeout: float, margin: float) -> IdleLimit:
    """Seconds of idleness after which a connection is stale: the timeout minus the margin,
    or half the timeout when the margin would leave nothing (a margin >= the timeout)."""
    if margin < server_timeout:
        return IdleLimit(float(server_timeout - margin), False)
    return IdleLimit(server_timeout / 2, True)
