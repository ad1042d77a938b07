"""One rule of staleness and of reuse, for every face, and what a first connection learns.

A face asks :func:`reason` before it hands a connection out again (Django's hygiene, an
SQLAlchemy checkout), :func:`as_good_as_new` before it hands one to another thread, and
calls :func:`learn` on the first connection it opens to a database. The reasons are words a
log line can carry; the faces add their own (Django's ``CONN_MAX_AGE``, autocommit).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from pa_dbhealth.core import line as lines
from pa_dbhealth.core import liveness, vendors, waits, waits_host
from pa_dbhealth.core.timeouts import Learned

logger = logging.getLogger("pa_dbhealth")

DEAD = "the server closed it (its socket shows the end of the connection)"
LEFT_IN_TRANSACTION = "a transaction is open on it (it was given back without a rollback)"
BROKEN = "it is broken: an error occurred and it does not answer"
AUTOCOMMIT = "its autocommit was left changed"
MAX_AGE = "it is older than CONN_MAX_AGE"
_IDLE = "it has been idle"
_LABELS = {
    DEAD: "dead",
    LEFT_IN_TRANSACTION: "left_in_transaction",
    BROKEN: "broken",
    AUTOCOMMIT: "autocommit",
    MAX_AGE: "max_age",
}


def label(reason: str) -> str:
    """A reason as a short word (a metric's label): dead, idle, max_age, broken, ..."""
    return "idle" if reason.startswith(_IDLE) else _LABELS.get(reason, "other")


def closed(reason: str, registry_dir: Any) -> None:
    """A face closed (or replaced) a connection for ``reason``: counted by its label, and
    published beside the face's registry (``REGISTRY_DIR``)."""
    waits_host.use(registry_dir)
    waits.count(waits.STALE, label(reason))


def idle(idle_seconds: float | None, limit: float | None) -> str | None:
    """The idleness reason: idle for the limit or longer (None: no limit, or not known)."""
    if limit is None or idle_seconds is None or idle_seconds < limit:
        return None
    return f"{_IDLE} for {idle_seconds:.1f} s (limit {limit:g} s)"


def reason(raw: Any, idle_seconds: float | None, limit: float | None) -> str | None:
    """Why the driver's connection ``raw`` must not be used again, or None: dead by its
    socket, or idle past the limit (never a query: the socket check costs no round trip)."""
    if liveness.is_dead(raw):
        return DEAD
    return idle(idle_seconds, limit)


def as_good_as_new(raw: Any) -> bool:
    """Whether a fresh connection would be indistinguishable from ``raw``, so it may be
    handed to another thread: alive, and no transaction open on the server (raw SQL
    included). Where the driver cannot say, a ROLLBACK ends whatever may be open."""
    if liveness.is_dead(raw) is not False:
        return False
    open_transaction = liveness.in_transaction(raw)
    if open_transaction is None:
        try:
            raw.rollback()
        except Exception:
            return False
        return True
    return not open_transaction


def learn(
    raw: Any, key: str, learned: Learned, account: tuple[str, str] | None
) -> vendors.ServerFacts | None:
    """Ask the server, once per database and process (one query), its idle timeout (kept in
    ``learned`` under ``key``) and the account's cap (written into the account's line);
    leaves no transaction open. None when it could not be asked (asked again next time)."""
    if not vendors.is_applicable(vendors.vendor_of(raw)):
        learned.learn(key, None)
        return None
    try:
        facts = vendors.server_facts(raw)
    except Exception as exc:
        logger.debug("could not read the idle timeout of %s: %s", key, exc)
        return None
    finally:
        if liveness.in_transaction(raw) is not False:
            with contextlib.suppress(Exception):  # a broken connection: its next use tells
                raw.rollback()
    learned.learn(key, facts.wait_timeout)
    if account is not None:
        lines.note_cap(*account, facts.account_limit)
    return facts
