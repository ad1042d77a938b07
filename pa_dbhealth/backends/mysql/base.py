"""Django's MySQL backend with a connect that retries while the connection cap is full.

Only :meth:`DatabaseWrapper.get_new_connection` is wrapped, so a query is never retried:
a retry happens before anything has been sent to the server. A connect refused by the
account's ``max_user_connections`` (1226), the server-wide one (1203) or a full server
(1040) is retried with jittered backoff for ``PA_DBHEALTH["CONNECT_RETRY"]`` seconds;
then the last error is raised as Django would raise it. Hourly quotas (also 1226), a wrong
password, an unknown database and an unreachable server are raised at once.

While a thread waits between attempts, another thread of the same process that closes its
connection to the same database hands it over instead (:mod:`pa_dbhealth.core.handoff`):
the waiting thread skips the rest of its wait and the connect. Only a connection a fresh
one would be indistinguishable from is handed over: alive (its socket is quiet), no error
since it was opened (a later ping does not wash one out), outside atomic blocks, in
autocommit, and with no transaction open on the server, raw SQL included (read from the
server's status flags; where the driver cannot say, a ROLLBACK ends whatever may be open).
Anything else is closed. Session state (user variables, ``SET SESSION``) does carry over,
as with a persistent connection. ``PA_DBHEALTH["HANDOFF"] = False`` turns this off.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db.backends.mysql import base as mysql_base
from django.utils.asyncio import async_unsafe

from pa_dbhealth import conf, holders, hygiene, tracker
from pa_dbhealth.core import connect as policy
from pa_dbhealth.core import handoff, liveness, parking, staleness, workers
from pa_dbhealth.core.connect import Ticket
from pa_dbhealth.core.registry import HeldConnection
from pa_dbhealth.half_switched import half_switched
from pa_dbhealth.holders import server_of
from pa_dbhealth.tracker import ledger

logger = logging.getLogger("pa_dbhealth.backends.mysql")


class DatabaseWrapper(mysql_base.DatabaseWrapper):
    # What the open connection was made with, and how many times it was handed over.
    _pa_dbhealth_opened_with: tuple[dict[str, Any], str | None] | None = None
    _pa_dbhealth_opened_by = 0  # the process it was opened in (a fork inherits it)
    _pa_dbhealth_handoffs = 0
    # An error occurred on the open connection at some point (Django clears errors_occurred
    # after a successful ping; this stays until the connection is closed).
    _pa_dbhealth_erred = False
    _errors_occurred = False
    # The token of the account's line the open connection holds (None: it holds none).
    _pa_dbhealth_ticket: Ticket | None = None
    # The open connection was parked by an earlier request (PARK), not opened for this one.
    _pa_dbhealth_unparked = False
    # The open connection's entry in the registry of holders while PARK keeps it, and where
    # the registry is: made at its first park, passed on with it (None: not made yet).
    _pa_dbhealth_listed: tuple[HeldConnection | None, Path | None] | None = None

    @property
    def errors_occurred(self) -> bool:
        return self._errors_occurred

    @errors_occurred.setter
    def errors_occurred(self, value: bool) -> None:
        self._errors_occurred = value
        if value:
            self._pa_dbhealth_erred = True

    def get_connection_params(self) -> dict[str, Any]:
        if isinstance(self.settings_dict.get("NAME"), os.PathLike):  # startproject's SQLite path
            found = half_switched(self.alias, self.settings_dict, "mysql")
            if found is not None:  # E025's words, not mysqlclient's TypeError
                raise ImproperlyConfigured(f"{found.id}: {found.message} Fix: {found.hint}")
        params: dict[str, Any] = super().get_connection_params()
        # Connect in the autocommit mode Django will set anyway: MySQLdb would otherwise
        # switch it off (PEP 249) and Django back on, two round trips on every connect while
        # the connection counts against the cap. OPTIONS["autocommit"] still wins.
        params.setdefault("autocommit", self.settings_dict["AUTOCOMMIT"])
        return params

    @async_unsafe
    def get_new_connection(self, conn_params: Any) -> Any:
        parent = super().get_new_connection
        options = conf.get_settings()
        self._pa_dbhealth_handoffs = 0
        self._pa_dbhealth_erred = False
        self._pa_dbhealth_unparked = False
        self._pa_dbhealth_listed = None
        if options.PARK:
            parked = self._pa_dbhealth_unpark(conn_params)
            if parked is not None:  # no connect: nothing more to set up
                return parked
        target = policy.Target(
            f"database {self.alias!r}",
            server_of(self.settings_dict, "mysql") if options.LINE else None,
            options.CONNECT_RETRY,
            ledger.counts.event,
            "python manage.py dbconnections",
            logger,
            options.REGISTRY_DIR,
            (self.alias, (conn_params, self.isolation_level)) if options.PARK else None,
        )
        wait = self._pa_dbhealth_receive(conn_params) if options.HANDOFF else None
        connection, self._pa_dbhealth_ticket = policy.connect(
            lambda: parent(conn_params), target, wait=wait
        )
        # Passed by another thread's request at the head of the line: set up already.
        self._pa_dbhealth_unparked = self._pa_dbhealth_ticket is not None and (
            self._pa_dbhealth_ticket.passed
        )
        self._pa_dbhealth_opened_with = (conn_params, self.isolation_level)
        self._pa_dbhealth_opened_by = os.getpid()
        return connection

    def _pa_dbhealth_receive(self, conn_params: Any) -> Callable[[float], Any]:
        """Waiting between attempts: a connection a sibling thread hands over meanwhile,
        when it was made with the same settings and is still alive."""
        waiting_room = handoff.room(self.alias)

        def wait(delay: float) -> Any:
            handed = waiting_room.receive(delay, (conn_params, self.isolation_level))
            if handed is None:
                return None
            logger.debug(
                "connect to database %r: took over a connection another thread was done with",
                self.alias,
            )
            self._pa_dbhealth_handoffs = handed.handoffs
            return handed.raw

        return wait

    def _pa_dbhealth_unpark(self, conn_params: Any) -> Any:
        """A connection an earlier request of this process parked (PARK), when it was made
        with the same settings, nobody waits in the line, and it is still alive; else None."""
        opened_with = (conn_params, self.isolation_level)
        parked = parking.LOT.take(self.alias, opened_with)
        if parked is None:
            return None
        if liveness.is_dead(parked.raw) is not False:  # the server dropped it meanwhile
            parking.give_up(parked, "the server dropped it")  # its token goes back too
            return None
        self._pa_dbhealth_ticket = parked.ticket
        self._pa_dbhealth_opened_with = opened_with
        self._pa_dbhealth_opened_by = os.getpid()
        self._pa_dbhealth_unparked = True
        self._pa_dbhealth_listed = (parked.held, parked.registry_dir)
        return parked.raw

    def init_connection_state(self) -> None:
        # A connection handed over by another thread, or parked by an earlier request, was
        # set up when it was opened.
        if not self._pa_dbhealth_handoffs and not self._pa_dbhealth_unparked:
            super().init_connection_state()

    def _close(self) -> None:
        if self._pa_dbhealth_park():
            return
        ticket, self._pa_dbhealth_ticket = self._pa_dbhealth_ticket, None
        if ticket is not None:  # in line: the next in line gets the token, in any process
            try:
                super()._close()  # type: ignore[misc]
            finally:  # once closed: the server lets the next one in rather than refusing it
                ticket.give_back()
            return
        room = handoff.room(self.alias)
        if self.connection is not None and room.waiting and self._may_hand_over():
            handed = handoff.Handed(
                self.connection, self._pa_dbhealth_opened_with, self._pa_dbhealth_handoffs + 1
            )
            if room.offer(handed):
                return
        super()._close()  # type: ignore[misc]

    def _pa_dbhealth_park(self) -> bool:
        """PARK: keep the connection, with its token, for the next request of the process
        instead of closing it, when it is as good as a fresh one and nobody waits."""
        ticket = self._pa_dbhealth_ticket
        if (
            ticket is None
            or self.connection is None
            or not conf.get_settings().PARK
            or not workers.threads_run_between_requests()
            or not self._as_good_as_new()
        ):
            return False
        used = tracker.last_used(self)
        if self._pa_dbhealth_listed is None:  # its first park
            where = holders.directory()
            self._pa_dbhealth_listed = (tracker.kept_entry(self) if where else None, where)
        parked = parking.Parked(
            self.connection,
            ticket,
            self._pa_dbhealth_opened_with,
            time.monotonic() if used is None else used,
            hygiene.alias_idle_limit(self.alias),
            *self._pa_dbhealth_listed,
        )
        if not parking.LOT.park(self.alias, parked):
            return False
        self._pa_dbhealth_ticket = None  # the lot holds it now
        return True

    def _may_hand_over(self) -> bool:
        """Allowed, not handed over too often already, and as good as a fresh connection."""
        return (
            self._pa_dbhealth_handoffs < handoff.MAX_HANDOFFS
            and conf.get_settings().HANDOFF
            and self._as_good_as_new()
        )

    def _as_good_as_new(self) -> bool:
        """The one reuse rule: opened in this process (not inherited from a parent, a uWSGI
        master that connected before it forked: its socket is every worker's), outside
        atomic blocks, no error since it was opened, in autocommit (as Django and the
        server see it), no transaction, no unread result."""
        return (
            self._pa_dbhealth_opened_with is not None
            and self._pa_dbhealth_opened_by == os.getpid()
            and not self.in_atomic_block
            and not self.needs_rollback
            and not self._pa_dbhealth_erred
            and self.autocommit
            and staleness.as_good_as_new(self.connection)
            and self.connection.get_autocommit()  # open: read from the last reply's flags
        )
