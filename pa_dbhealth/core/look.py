"""One look at a server, bounded in time: what the health view, the commands, the audit and
the cap report share.

A look opens a connection if it needs one (a single attempt, with a connect timeout), asks
its question, and closes only what it opened. It must also answer when the server does
not: a frozen server (SIGSTOP) or a link that goes silent after the handshake leaves a read
blocked for as long as TCP keeps the connection, which no connect timeout covers. So the
look runs in a thread of its own and the caller waits for it at most ``seconds``; when time
is up, the connection's socket is shut down, which ends the blocked read at once, and the
caller gets :class:`LookTimedOut`. The connection is then dead, and whoever owns it closes
it: it is never reused.

The audit's look, :func:`ask_server`, is the same for every face: the server's facts and the
account's connections on one connection, or the finding that says why the server could not
be asked.
"""

from __future__ import annotations

import math
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pa_dbhealth.core import findings, vendors
from pa_dbhealth.core.audit import Audit, Terms
from pa_dbhealth.core.errors import Kind, classify
from pa_dbhealth.core.findings import Finding
from pa_dbhealth.core.liveness import socket_fd
from pa_dbhealth.core.retry import in_single_attempt
from pa_dbhealth.core.vendors import AccountSnapshot, ServerFacts

T = TypeVar("T")


class LookTimedOut(Exception):
    """The server did not answer a look within its bound."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the server did not answer within {seconds:g} s")
        self.seconds = seconds


def connect_timeout_options(vendor: str, seconds: float) -> dict[str, int]:
    """Driver connect options that wait at most ``seconds`` (rounded up, at least 1) for the
    server: mysqlclient's and PyMySQL's ``connect_timeout``, libpq's ``connect_timeout``."""
    whole = max(1, math.ceil(seconds))
    if vendor in ("mysql", "postgresql"):
        return {"connect_timeout": whole}
    return {}


def shut_down(connection: Any) -> None:
    """Shut down a DB-API connection's socket: a read blocked on it in another thread
    returns at once (the driver then reports the connection lost)."""
    fd = socket_fd(connection)
    if fd is None:
        return
    try:
        sock = socket.socket(fileno=os.dup(fd))
    except OSError:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # not connected any more: nothing blocks on it
    finally:
        sock.close()  # closes the duplicate only


def in_look() -> bool:
    """Whether the caller is connecting for a look (inside
    :func:`~pa_dbhealth.core.retry.single_attempt`: every step must stay bounded, so a
    receiver that would query on connect leaves the connection alone here). One flag for
    every face: the connect policy tries once under it, too."""
    return in_single_attempt()


class _Run(Generic[T]):
    def __init__(self, work: Callable[[], T]) -> None:
        self.work = work
        self.done = threading.Event()
        self.result: T | None = None
        self.error: BaseException | None = None

    def __call__(self) -> None:
        try:
            self.result = self.work()
        except BaseException as exc:  # handed to the caller's thread
            self.error = exc
        finally:
            self.done.set()


def within(
    seconds: float,
    work: Callable[[], T],
    *,
    on_timeout: Callable[[], None] | None = None,
    name: str = "pa_dbhealth-look",
) -> T:
    """``work()``, run in a thread of its own; its result or its exception, or
    :class:`LookTimedOut` once ``seconds`` have passed (after ``on_timeout()``, which should
    unblock the work: :func:`shut_down` its connection)."""
    run = _Run(work)
    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    if not run.done.wait(seconds):
        if on_timeout is not None:
            on_timeout()
        raise LookTimedOut(seconds)
    if run.error is not None:
        raise run.error
    return run.result  # type: ignore[return-value]


def facts_and_snapshot(raw: Any) -> tuple[ServerFacts, AccountSnapshot]:
    """The question the audit asks on its DB-API connection (two round trips)."""
    return vendors.server_facts(raw), vendors.account_snapshot(raw)


@dataclass(frozen=True)
class Asked:
    """What the look found: both, or neither with the reason the limits are not known."""

    facts: ServerFacts | None
    snapshot: AccountSnapshot | None
    reason: str


def ask_server(
    report: Audit,
    who: str,
    address: str,
    terms: Terms,
    look: Callable[[Callable[[Any], tuple[ServerFacts, AccountSnapshot]]], Any],
    errors: tuple[type[BaseException], ...],
) -> Asked | None:
    """``look(facts_and_snapshot)``. None when the server could not be asked (no answer in
    time, refused, unreachable): the finding saying so is on ``report``, and what the settings
    would mean for a server not seen can wait. A server that answers but may not show its
    limits gives an ``Asked`` without figures and the reason."""
    try:
        facts, snapshot = look(facts_and_snapshot)
    except LookTimedOut as exc:
        report.findings.append(connect_failure(who, address, exc, terms))
        return None
    except errors as exc:
        found = classify(exc)
        if found.kind is not Kind.OTHER:
            report.findings.append(connect_failure(who, address, exc, terms))
            return None
        return Asked(None, None, f"no permission to read its limits: {found.short}")
    return Asked(facts, snapshot, "")


def connect_failure(who: str, address: str, exc: BaseException, terms: Terms) -> Finding:
    """E011 (no server answers at ``address``) or E018 (it refused the connection)."""
    classified = classify(exc)
    if classified.kind is Kind.UNREACHABLE:
        fix = (
            f"Check {terms.address} and that the server runs; on PythonAnywhere the host is "
            "<username>.mysql.pythonanywhere-services.com."
        )
        return findings.unreachable(who, address, classified.short, fix)
    fixes = {
        Kind.ACCOUNT_CAP: "The account holds all its connections already. "
        f"`{terms.connections_command}` names their holders without needing a connection; "
        "stop one (reload the web app, stop the scheduled or always-on task, close the "
        "console; on PythonAnywhere the Web and Tasks tabs), then run this again.",
        Kind.HOURLY_QUOTA: "The account's hourly quota is used up: waiting seconds will not "
        "help; it resets within the hour.",
        Kind.ACCESS_DENIED: f"Check {terms.credentials}.",
        Kind.UNKNOWN_DATABASE: f"Check {terms.database_name} (on PythonAnywhere: "
        "'<username>$<dbname>').",
    }
    fix = fixes.get(classified.kind, "Check the database settings and the server's log.")
    return findings.cannot_connect(who, classified.short, fix)
