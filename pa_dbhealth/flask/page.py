"""The status page on the blueprint, ``/dbhealth/page/``: the Django page's content and rules
(``core.page.flow``) with this face's access.

Flask has no CSRF protection of its own, so the page keeps one cookie, signed with
``app.secret_key`` (itsdangerous, salted): a random CSRF token of the browser's own, which
every form carries and every POST must return (compared in constant time), and, once the
health token was entered, the sign-in (``core.page.access.grant``). The cookie is HttpOnly,
SameSite=Strict, Secure on HTTPS, limited to the page's path and to 8 hours. Without a
``secret_key`` nothing can be signed: the page shows the status alone and says so.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import partial
from http import HTTPStatus
from typing import Any, TypeVar

from flask import Flask, Response, current_app, request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.engine import Engine

from pa_dbhealth.core import registry, status_cache
from pa_dbhealth.core.findings import Finding, settings_findings
from pa_dbhealth.core.health import DatabaseHealth, Report
from pa_dbhealth.core.options import Options
from pa_dbhealth.core.page import access as page_access
from pa_dbhealth.core.page import flow as page_flow
from pa_dbhealth.core.registry import Found, Holder
from pa_dbhealth.core.sign_in_limit import SignInAttempts
from pa_dbhealth.flask.cli import recycle_note
from pa_dbhealth.sqlalchemy import health
from pa_dbhealth.sqlalchemy.audit import report
from pa_dbhealth.sqlalchemy.engine_look import look_at_engine
from pa_dbhealth.sqlalchemy.engines import database_errors
from pa_dbhealth.sqlalchemy.holding import account_holders_of
from pa_dbhealth.sqlalchemy.wording import flask_wording

T = TypeVar("T")

CSRF_FIELD = "csrf_token"
HINTS = page_flow.Hints(
    sign_in="Enter the health token (app.config['PA_DBHEALTH']['HEALTH_TOKEN']) to see who "
    "holds the connections.",
    enable="Details are off: set app.config['PA_DBHEALTH']['HEALTH_TOKEN'] to a secret (and "
    "app.secret_key) to see who holds the connections here.",
)
UNSIGNABLE = (
    "Details are off: set app.secret_key, which signs the page's cookie, and "
    "app.config['PA_DBHEALTH']['HEALTH_TOKEN'] to a secret."
)
UNSIGNED_HINTS = page_flow.Hints(sign_in=UNSIGNABLE, enable=UNSIGNABLE)


class FlaskSite:
    """The page's view of the app's engines (``"default"`` and each bind)."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.extension: Any = app.extensions["pa_dbhealth"]
        self.options = self.extension.options(app)
        self.engines = self.extension.engines(app)
        self.names = list(self.engines)
        self.cap = self.options.CONNECTION_LIMIT
        self.errors = tuple({e for en in self.engines.values() for e in database_errors(en)})

    def report(self) -> Report:
        return health.check(self.engines, options=self.options)

    def status(self, fresh_for: float) -> Report:
        return shared_status(self.app, self.engines, self.options, fresh_for)

    def attempts(self) -> SignInAttempts:
        return SignInAttempts(registry.directory(self.options.REGISTRY_DIR))

    def holders(self, name: str) -> tuple[Found, list[Holder]]:
        held = account_holders_of(self.engines[name], self.options)
        return held.found, held.holders

    def keeps(self, name: str) -> bool:
        return False  # a look opens a connection of its own, never the pool's

    def findings(self, result: DatabaseHealth, ask: bool) -> list[Finding]:
        name, engine = result.alias, self.engines[result.alias]
        wording = flask_wording(
            None if name == "default" else name, recycle_note(self.app, name, engine)
        )
        audit = report(engine, name=name, options=self.options, offline=not ask, wording=wording)
        site = settings_findings(self.extension.problems(self.app))
        return [*site, *self.extension.registry_findings(self.app), *audit.findings]

    def look(self, name: str, question: Callable[[Any], T]) -> T:
        return look_at_engine(
            self.engines[name], question, timeout=self.options.HEALTH_CONNECT_TIMEOUT
        )


def shared_status(
    app: Flask,
    engines: dict[str, Engine],
    options: Options,
    fresh_for: float = status_cache.FRESH_FOR,
) -> Report:
    """The engines' report as the app's anonymous views (the page's and the health view's)
    share it: looked up at most once every ``fresh_for`` seconds per process."""
    shared = app.extensions.setdefault("pa_dbhealth.status", status_cache.SharedStatus())
    look = partial(health.check, engines, options=options)
    return shared.report(tuple(engines), look, fresh_for=fresh_for)  # type: ignore[no-any-return]


def _signer(app: Flask) -> URLSafeTimedSerializer | None:
    if not app.secret_key:
        return None
    return URLSafeTimedSerializer(app.secret_key, salt=page_access.SALT)


def _kept(signer: URLSafeTimedSerializer | None) -> dict[str, str]:
    """The cookie's ``{"csrf", "grant"}`` when its signature holds and it is not too old."""
    value = request.cookies.get(page_access.COOKIE)
    if signer is None or not value:
        return {}
    try:
        kept = signer.loads(value, max_age=page_access.MAX_AGE)
    except BadSignature:  # tampered, signed with another key, or expired
        return {}
    if not isinstance(kept, dict) or not isinstance(kept.get("csrf"), str):
        return {}
    return {k: v for k, v in kept.items() if isinstance(v, str)}


def _secured(response: Response) -> Response:
    response.headers.update(page_access.HEADERS)
    response.vary.add("Cookie")
    return response


def page_view() -> Response:
    """The status page of every engine of the app. GET: the page; POST: sign in or out, or
    free idle connections (each POST carries the cookie's CSRF token)."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    site = FlaskSite(app)
    signer = _signer(app)
    token = site.options.HEALTH_TOKEN if signer is not None else None
    kept = _kept(signer)
    csrf = kept.get("csrf") or page_access.new_csrf_token()
    grant = kept.get("grant")
    form = request.form if request.method == "POST" else None
    if form is not None:
        given = str(form.get(CSRF_FIELD, ""))
        if not kept or not hmac.compare_digest(given.encode(), csrf.encode()):
            text = "Forbidden: the CSRF token is missing or wrong. Reload the page and try again."
            return _secured(Response(text, HTTPStatus.FORBIDDEN, mimetype="text/plain"))
    url = request.script_root + request.path  # the app may be mounted under a prefix
    visitor = page_flow.Visitor(
        form=form,
        signed_in=page_access.granted(grant, token),
        address=request.remote_addr or "",
        attempts=site.attempts(),
    )
    hints = HINTS if signer is not None else UNSIGNED_HINTS
    answer = page_flow.respond(site, visitor, token, url, (CSRF_FIELD, csrf), hints)
    if isinstance(answer, page_flow.Answer):
        response = Response(answer.html, answer.status, mimetype="text/html")
        if answer.retry_after is not None:
            response.headers["Retry-After"] = str(answer.retry_after)
    else:  # the page again, as a GET
        response = Response("", HTTPStatus.SEE_OTHER, headers={"Location": url})
        grant = page_access.grant(token) if answer.sign_in and token else None
        csrf = page_access.new_csrf_token()  # a new one with each sign-in or out
    new = {"csrf": csrf, **({"grant": grant} if grant else {})}
    if signer is not None and new != kept:
        response.set_cookie(
            page_access.COOKIE,
            signer.dumps(new),
            max_age=page_access.MAX_AGE,
            path=url,
            secure=request.is_secure,
            httponly=True,
            samesite="Strict",
        )
    return _secured(response)
