"""What a face hands the status page (:class:`Site`, :class:`Visitor`, :class:`Hints`) and
what it gets back (:class:`Answer`, :class:`SeeOther`): the terms of ``core.page.flow``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from pa_dbhealth.core.findings import Finding
from pa_dbhealth.core.health import DatabaseHealth, Report
from pa_dbhealth.core.page import kill as page_kill
from pa_dbhealth.core.registry import Found, Holder
from pa_dbhealth.core.sign_in_limit import SignInAttempts

T = TypeVar("T")


class Site(Protocol):
    """What a face tells the page about its databases."""

    @property
    def names(self) -> Sequence[str]:
        """The databases' names (Django aliases, Flask engine names)."""

    @property
    def errors(self) -> tuple[type[BaseException], ...]:
        """The database errors its looks raise."""

    @property
    def cap(self) -> int:
        """``CONNECTION_LIMIT``: the cap shown when the server cannot be asked."""

    def report(self) -> Report:
        """One bounded probe of each database."""

    def status(self, fresh_for: float) -> Report:
        """The report anonymous views of this process share, looked up again when older than
        ``fresh_for`` seconds (``core.status_cache``)."""

    def holders(self, name: str) -> tuple[Found, list[Holder]]:
        """The registry, and its entries for the database's server and account."""

    def keeps(self, name: str) -> bool:
        """Whether this thread keeps a connection open to the database (CONN_MAX_AGE): the
        looks ask through it, opening none."""

    def findings(self, result: DatabaseHealth, ask: bool) -> list[Finding]:
        """The audit's findings; from the settings alone unless ``ask``."""

    def look(self, name: str, question: Callable[[Any], T]) -> T:
        """``question(dbapi_connection)``, answered within the bound (single attempt)."""


@dataclass(frozen=True)
class Answer:
    """A page to send, with its HTTP status."""

    status: int
    html: str
    retry_after: int | None = None  # seconds, with a 429


@dataclass(frozen=True)
class SeeOther:
    """Send the browser to the page again (303, so it comes back with a GET), after setting
    the sign-in cookie (``sign_in``) or deleting it."""

    sign_in: bool


@dataclass(frozen=True)
class Visitor:
    """What the face found out about the request: its POST body (None for a GET), whether
    its signed cookie holds a sign-in for the current token, how to ask whether it is a
    staff user (called only when the probe found every database answering), its client
    address and where wrong tokens are counted (``core.sign_in_limit``)."""

    form: page_kill.Form | None
    signed_in: bool
    is_staff: Callable[[], bool] = lambda: False
    address: str = ""
    attempts: SignInAttempts = field(default_factory=lambda: SignInAttempts(None))


@dataclass(frozen=True)
class Hints:
    """How the face tells an anonymous visitor to get the details."""

    sign_in: str  # a token is configured
    enable: str  # none is: how to configure one
