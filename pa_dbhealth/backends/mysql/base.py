"""Django's MySQL backend with a connect that retries while the connection cap is full.

Only :meth:`DatabaseWrapper.get_new_connection` is wrapped, so a query is never retried:
a retry happens before anything has been sent to the server. A connect refused by the
account's ``max_user_connections`` (1226), the server-wide one (1203) or a full server
(1040) is retried with jittered backoff for ``PA_DBHEALTH["CONNECT_RETRY"]`` seconds;
then the last error is raised as Django would raise it. Hourly quotas (also 1226), a wrong
password, an unknown database and an unreachable server are raised at once.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db.backends.mysql import base as mysql_base
from django.utils.asyncio import async_unsafe

from pa_dbhealth import conf, tracker
from pa_dbhealth.errors import Classified
from pa_dbhealth.retry import connect_with_retry

logger = logging.getLogger("pa_dbhealth.backends.mysql")


class DatabaseWrapper(mysql_base.DatabaseWrapper):
    def get_connection_params(self) -> dict[str, Any]:
        params: dict[str, Any] = super().get_connection_params()
        # Connect in the autocommit mode Django will set anyway: MySQLdb would otherwise
        # switch it off (PEP 249) and Django back on, two round trips on every connect while
        # the connection counts against the cap. OPTIONS["autocommit"] still wins.
        params.setdefault("autocommit", self.settings_dict["AUTOCOMMIT"])
        return params

    @async_unsafe
    def get_new_connection(self, conn_params: Any) -> Any:
        parent = super().get_new_connection

        def on_retry(classified: Classified, attempt: int, delay: float) -> None:
            tracker.note_connect_retry(self.alias)
            logger.debug(
                "connect to database %r refused, attempt %d: %s; retrying in %.0f ms",
                self.alias,
                attempt,
                classified.short,
                delay * 1000,
            )

        def on_giveup(classified: Classified, attempts: int, elapsed: float) -> None:
            tracker.note_connect_giveup(self.alias)
            logger.warning(
                "gave up connecting to database %r after %d attempts in %.2f s: %s",
                self.alias,
                attempts,
                elapsed,
                classified.short,
            )

        return connect_with_retry(
            lambda: parent(conn_params),
            budget=conf.get_settings().CONNECT_RETRY,
            on_retry=on_retry,
            on_giveup=on_giveup,
        )
