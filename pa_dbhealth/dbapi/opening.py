"""How a raw script's connection is made: the driver and its arguments from a URL or from
the driver's own keyword arguments, and the one connect that waits at the account's cap.

:func:`open_in_line` is the only place this face calls the core's connect policy: a token
of the account's line when its cap is known (``core.line``), else retries with backoff
(``core.retry``), for ``connect_retry`` seconds; then the driver's own error is raised.
The first connect to an account asks the server for its idle timeout and cap (one round
trip, ``vendors.server_facts``), so the line and the staleness rule know them.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from dataclasses import dataclass, field
from typing import Any

from pa_dbhealth import dburl
from pa_dbhealth.core import line as lines
from pa_dbhealth.core import registry, vendors
from pa_dbhealth.core.errors import Classified
from pa_dbhealth.core.line_connect import Ticket, connect_in_line
from pa_dbhealth.core.retry import connect_with_retry
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
    host = params.get("unix_socket") or params.get("host")
    server = registry.server_key("mysql", host, params.get("port"))
    account = str(params.get("user") or "")
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

    def connect() -> Any:
        return target.driver.connect(**target.params)

    def on_retry(classified: Classified, attempt: int, delay: float) -> None:
        lines.note_cap(*account, lines.cap_in_message(classified.message))
        logger.debug("connect refused (attempt %d): %s", attempt, classified.short)

    def on_giveup(classified: Classified, attempts: int, elapsed: float) -> None:
        logger.warning(
            "gave up connecting after %d attempts in %.2f s: %s",
            attempts,
            elapsed,
            classified.short,
        )

    line = lines.line_for(*account)
    if line is not None:
        raw, ticket = connect_in_line(line, connect, budget, on_retry, on_giveup)
    else:
        raw = connect_with_retry(connect, budget=budget, on_retry=on_retry, on_giveup=on_giveup)
        ticket = None
    if not timeouts.knows(target.key):
        _learn(target, raw)
    return raw, ticket


def _learn(target: Target, raw: Any) -> None:
    try:
        facts = vendors.server_facts(raw)
    except target.errors as exc:
        logger.debug("the server's limits were not read: %s", exc)
        return
    timeouts.learn(target.key, facts.wait_timeout or None)
    lines.note_cap(target.server, target.account, facts.account_limit)
