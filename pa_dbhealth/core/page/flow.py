"""What the status page answers, for every face, once the face has settled who may see it.

A face does the access (token cookie, staff), the CSRF check, the cookies and the routing;
it hands this module a :class:`Site` (how to probe, look, read the registry and audit its
databases) and turns the :class:`Answer` into its framework's response, with
``page_access.HEADERS`` (these terms are in ``core.page.site``). Every look is bounded
(``core.look``): the page never hangs on a server that does not answer, and is refused at
once at a full cap.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any, TypeVar

from pa_dbhealth.core import registry
from pa_dbhealth.core.errors import classify
from pa_dbhealth.core.health import DatabaseHealth, Report, Status
from pa_dbhealth.core.look import LookTimedOut
from pa_dbhealth.core.page import Page, Row, database
from pa_dbhealth.core.page import access as page_access
from pa_dbhealth.core.page import html as page_html
from pa_dbhealth.core.page import kill as page_kill
from pa_dbhealth.core.page import kill_html as page_kill_html
from pa_dbhealth.core.page.html import Csrf, Notice
from pa_dbhealth.core.page.site import Answer, Hints, SeeOther, Site, Visitor
from pa_dbhealth.core.render_holders import WAY_OUT
from pa_dbhealth.core.status_cache import FRESH_FOR
from pa_dbhealth.core.vendors import KillResult

__all__ = [
    "Answer",
    "Hints",
    "SeeOther",
    "Site",
    "Visitor",
    "act",
    "build",
    "http_status",
    "may_ask_again",
    "respond",
    "show",
    "sign_in",
]

T = TypeVar("T")
NOT_ASKED = "pa_dbhealth.I015"  # findings.server_not_asked
WRONG_TOKEN_STATUS = 60.0  # seconds: how old a status a wrong token's answer may show

SPARED_WHY = {
    "gone": "not (or no longer) a connection of this account",
    "busy": "no longer idle",
    "in transaction": "inside a transaction",
    page_kill.UNKNOWN: "the server does not show its transaction; tick 'Also kill those "
    "whose transaction the server does not show' to include it",
}


def respond(
    site: Site, visitor: Visitor, token: str | None, url: str, csrf: Csrf, hints: Hints
) -> Answer | SeeOther:
    """The answer to a GET or a (CSRF-checked) POST of the page. Anonymous visitors get the
    status alone (and the token form when a token is configured), from the report the
    process's anonymous views share; a POST ``action`` is ``login`` (see :func:`sign_in`),
    ``logout``, or ``preview``/``kill`` (see :func:`act`)."""
    form = visitor.form
    action = None if form is None else form.get("action")
    if form is not None and visitor.signed_in and action in ("preview", "kill"):
        return act(site, form, url, csrf)  # no probe first: the kill makes its own look
    if action == "logout":
        return SeeOther(sign_in=False)

    def status_only(report: Report, notice: Notice | None = None, status: int = 0) -> Answer:
        html = page_html.status_only(
            report.status,
            url,
            csrf=csrf if token else None,
            hint=hints.sign_in if token else hints.enable,
            notice=notice,
        )
        return Answer(status or http_status(report.status), html)

    if action == "login" and form is not None:
        return sign_in(site, visitor, form.get("token"), token, status_only)
    report = site.report() if visitor.signed_in else site.status(FRESH_FOR)
    up = all(db.up for db in report.databases)
    if not (visitor.signed_in or (up and visitor.is_staff())):
        notice = None if form is None else Notice("Sign in first.", error=True)
        return status_only(report, notice, HTTPStatus.FORBIDDEN if notice else 0)
    if form is not None:  # a staff user's kill forms
        return act(site, form, url, csrf)
    return show(site, report if visitor.signed_in else site.report(), url, csrf)


def sign_in(
    site: Site,
    visitor: Visitor,
    given: str | None,
    token: str | None,
    status_only: Callable[[Report, Notice, int], Answer],
) -> Answer | SeeOther:
    """A POST of the token form. It costs no database connection of its own: a wrong token
    is answered with the status anonymous views share (up to :data:`WRONG_TOKEN_STATUS`
    seconds old). An address that sent too many wrong tokens gets a 429 with
    ``Retry-After``, without its token being compared."""
    granted, wait = page_access.attempt(given, token, visitor.attempts, visitor.address)
    if granted:
        return SeeOther(sign_in=True)
    report = site.status(WRONG_TOKEN_STATUS)
    if wait is not None:
        notice = Notice(f"Too many wrong tokens: try again in {wait} s.", error=True)
        answer = status_only(report, notice, HTTPStatus.TOO_MANY_REQUESTS)
        return Answer(answer.status, answer.html, retry_after=wait)
    return status_only(report, Notice("Wrong token.", error=True), HTTPStatus.FORBIDDEN)


def http_status(status: Status) -> int:
    """503 when a database is critical (as the health view answers), else 200."""
    return HTTPStatus.SERVICE_UNAVAILABLE if status is Status.CRITICAL else HTTPStatus.OK


def build(site: Site, report: Report) -> Page:
    """The page's model: each probed database with its holders and findings."""
    sections = []
    for result in report.databases:
        found, holders = site.holders(result.alias)
        ask = may_ask_again(result) or (result.up and site.keeps(result.alias))
        # Judged on the settings alone, the audit says so in a command's words (I015, "not
        # asked (--offline)"): the page says it in its own.
        findings = [f for f in site.findings(result, ask) if ask or f.id != NOT_ASKED]
        section = database(result, found, holders, findings, site.cap, settings_only=not ask)
        sections.append(section)
    return Page(report.status, tuple(sections))


def may_ask_again(result: DatabaseHealth) -> bool:
    """Whether the audit may ask the server after the probe: it answered, and a connection
    is free besides the one the probe used. (After the probe took the last one, a new
    connect would race the server's release of it and meet the cap.)"""
    snapshot = result.snapshot
    return snapshot is not None and (snapshot.headroom is None or snapshot.headroom >= 1)


def show(
    site: Site,
    report: Report,
    url: str,
    csrf: Csrf,
    notice: Notice | None = None,
    status: int | None = None,
) -> Answer:
    """The whole page, for a visitor with access."""
    html = page_html.full(build(site, report), url, csrf=csrf, notice=notice)
    return Answer(status or http_status(report.status), html)


def act(site: Site, form: page_kill.Form, url: str, csrf: Csrf) -> Answer:
    """A POST of the kill forms, for a visitor with access: ``action=preview`` shows what
    would be killed; ``action=kill`` (with ``confirm=yes``) kills, then shows the page with
    what it did."""
    action = form.get("action")
    try:
        if action not in ("preview", "kill"):
            raise page_kill.BadRequest(f"action: {action!r} is not one of 'preview', 'kill'")
        if action == "kill" and form.get("confirm") != "yes":
            raise page_kill.BadRequest("confirm: a kill needs confirm=yes (the confirmation)")
        request = page_kill.parse(form, site.names)
    except page_kill.BadRequest as exc:
        notice = Notice(f"Bad request: {exc}", error=True)
        return show(site, site.report(), url, csrf, notice, HTTPStatus.BAD_REQUEST)
    if action == "preview":
        found = _look(site, request.database, page_kill.candidates(request.min_idle))
        if isinstance(found, Notice):
            return show(site, site.report(), url, csrf, found)
        _, holders = site.holders(request.database)
        by_id = registry.join(found, holders)
        rows = [
            Row(
                c.id, by_id[c.id].as_dict() if c.id in by_id else None, c.command, c.seconds, c.idle
            )
            for c in found
        ]
        html = page_kill_html.confirm(request.database, request.min_idle, rows, url, csrf=csrf)
        return Answer(HTTPStatus.OK, html)
    done = _look(site, request.database, page_kill.kill(request))
    notice = done if isinstance(done, Notice) else _killed(request.database, done)
    return show(site, site.report(), url, csrf, notice)


def _look(site: Site, name: str, question: Callable[[Any], T]) -> T | Notice:
    try:
        return site.look(name, question)
    except LookTimedOut as exc:
        return Notice(f"{name}: {exc}; nothing was killed.", error=True)
    except site.errors as exc:
        found = classify(exc)
        more = f" {WAY_OUT}" if found.kind.is_cap else ""
        return Notice(
            f"{name}: the page could not open a connection to free others ({found.short}); "
            f"nothing was killed.{more}",
            error=True,
        )


def _killed(name: str, result: KillResult) -> Notice:
    killed = ", ".join(map(str, result.killed)) or "none"
    text = f"{name}: killed {killed}."
    if result.spared:
        spared = ", ".join(f"{i} ({SPARED_WHY.get(why, why)})" for i, why in result.spared.items())
        text += f" Spared: {spared}."
    return Notice(text)
