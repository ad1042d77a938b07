"""How a raw script's connection is made: the driver and its arguments from a URL or from
the driver's own keyword arguments, and the one connect that waits at the account's cap.

:func:`open_in_line` is the only place this face calls the core's connect policy: a token
of the account's line when its cap is known (``core.line``), else retries with backoff
(``core.connect``), for ``connect_retry`` seconds; then the driver's own error is raised.
The first connect to an account asks the server for its idle timeout and cap (one round
trip, ``core.staleness.learn``), so the line and the staleness rule know them.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from dataclasses import dataclass, field
from typing import Any

from pa_dbhealth import dburl
from pa_dbhealth.core import connect as policy
from pa_dbhealth.core import staleness
from pa_dbhealth.core.connect import Ticket
from pa_dbhealth.core.server_id import account_key
from pa_dbhealth.core.timeouts import Learned

logger = logging.getLogger("pa_dbhealth.dbapi")

DRIVERS = {
    "mysqlclient": "MySQLdb",
    "MySQLdb": "MySQLdb",
    "pymysql": "pymysql",
    "PyMySQL": "pymysql",
}

timeouts = Learned()  # the server's wait_timeout, by "server account"


@dataclass(frozen=True)
class Target:
    """Where a connection goes and how the driver is asked for it."""

    driver: Any  # the driver's module
    params: dict[str, Any] = field(repr=False)
    server: str  # registry.server_key
    account: str

    @property
    def key(self) -> str:
        return f"{self.server} {self.account}"

    @property
    def errors(self) -> tuple[type[BaseException], ...]:
        return (self.driver.Error,)


def target(url: str | None, driver: str | None, params: dict[str, Any]) -> Target:
    """The target of ``connect(url)`` or ``connect(**driver_keyword_arguments)``; a bad URL,
    an unknown driver or no driver installed is a one-line ``ValueError``."""
    if driver is not None and driver not in DRIVERS:
        raise ValueError(f"unknown driver {driver!r}: use 'mysqlclient' or 'pymysql'")
    if url is not None:
        if params:
            raise ValueError("give a URL or the driver's keyword arguments, not both")
        parsed = dburl.parse(url)
        if parsed.vendor != "mysql":
            raise ValueError(f"pa_dbhealth.dbapi connects to MySQL/MariaDB, not {parsed.vendor}")
        params = {"host": parsed.host or "localhost", "user": parsed.user}
        params.update(password=parsed.password, database=parsed.database, **parsed.query)
        if parsed.port:
            params["port"] = parsed.port
        module = DRIVERS.get(driver or "", parsed.driver)
    else:
        module = DRIVERS.get(driver or "") or _installed()
    server, account = account_key(
        "mysql",
        params.get("host"),
        params.get("port"),
        params.get("user"),
        params.get("unix_socket"),
    )
    return Target(importlib.import_module(module), dict(params), server, account)


def _installed() -> str:
    for module in ("MySQLdb", "pymysql"):
        if importlib.util.find_spec(module) is not None:
            return module
    raise ValueError("no MySQL driver is installed: `pip install mysqlclient` or `PyMySQL`")


def open_in_line(target: Target, budget: float) -> tuple[Any, Ticket | None]:
    """A new driver connection to ``target``, waiting in the account's line at the cap for
    up to ``budget`` seconds; then the driver's error is raised as it is."""
    account = (target.server, target.account)
    waiting = policy.Target(f"{target.account}@{target.server}", account, budget, logger=logger)
    raw, ticket = policy.connect(lambda: target.driver.connect(**target.params), waiting)
    if not timeouts.knows(target.key):
        staleness.learn(raw, target.key, timeouts, account)
    return raw, ticket
