"""What every connect shares when the server refuses it: the :class:`Target` a face describes
its database with, the events it counts, a refusal classified and its cap learned, and the
give-up said in words (:mod:`pa_dbhealth.core.connect`, :mod:`pa_dbhealth.core.in_line`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pa_dbhealth.core import line as lines
from pa_dbhealth.core import waits
from pa_dbhealth.core.errors import Classified, classify

logger = logging.getLogger("pa_dbhealth.connect")

# What a face counts (its own figures): a refused attempt that will be retried, a give-up,
# a look refused at the cap, a connection handed over by a sibling thread.
RETRY, GIVEUP, LOOK_REFUSED, HANDOFF = "retry", "giveup", "look_refused", "handoff"


def _ignore(event: str) -> None:
    return None


@dataclass(frozen=True)
class Target:
    name: str  # the database in log lines: "database 'default'", "mysql://app@host/app"
    account: tuple[str, str] | None  # (server, account) of its line; None: no line
    budget: float  # seconds to wait at the cap (CONNECT_RETRY)
    count: Callable[[str], None] = _ignore
    look_command: str = "python -m pa_dbhealth connections"  # names the holders, even at the cap
    logger: logging.Logger = logger  # the face's: retries at DEBUG, give-ups at WARNING
    registry_dir: Any = None  # the face's REGISTRY_DIR: the wait figures are written beside it
    # (key, opened_with) of a connection a parked one may stand in for (core.passing);
    # None: never pass one to this connect
    reuse: tuple[Any, Any] | None = None


def refusal(exc: BaseException, target: Target) -> Classified:
    """``exc`` classified, its cap learned; raised again unless it is a refusal at a cap."""
    classified = counted(exc)
    if not classified.kind.is_cap:
        raise exc
    waits.began()
    if target.account is not None:
        lines.note_cap(*target.account, lines.cap_in_message(classified.message))
    return classified


def counted(exc: BaseException) -> Classified:
    classified = classify(exc)
    waits.count(waits.REFUSALS, waits.refusal_kind(classified))
    return classified


def said_give_up(
    target: Target, classified: Classified, attempts: int, elapsed: float, outside: bool | None
) -> None:
    target.count(GIVEUP)
    waits.count(waits.GIVEUPS)
    where = ""
    if outside:
        where = (
            "; the slots are held outside pa_dbhealth (not in its line): a console, a "
            f"scheduled task, another host or app; `{target.look_command}` names them"
        )
    elif outside is False:
        where = f"; pa_dbhealth's own processes held them: `{target.look_command}` names them"
    target.logger.warning(
        "gave up connecting to %s after %d attempts in %.2f s: %s%s",
        target.name,
        attempts,
        elapsed,
        classified.short,
        where,
    )
