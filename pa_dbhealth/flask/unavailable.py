"""The Flask face's 503: a request whose connect gave up at the cap (``CONNECT_RETRY``
passed), hit an hourly quota, or found the server gone is answered 503 with a
``Retry-After`` and the Django middleware's words (``core.unavailable``), never the
driver's text; a template ``503.html`` of the app gives the page the site's look (it gets
``retry_after`` and ``quota``). One log line says what happened and names the holders of
the account's connections from the registry (at most once a minute per process)."""

from __future__ import annotations

import logging
from typing import Any

from flask import Response, current_app, render_template
from jinja2 import TemplateNotFound
from sqlalchemy.exc import DBAPIError

from pa_dbhealth.core import unavailable
from pa_dbhealth.core.errors import classify
from pa_dbhealth.sqlalchemy.engines import engine_account
from pa_dbhealth.sqlalchemy.holding import account_holders_of

logger = logging.getLogger("pa_dbhealth.flask")

report_throttle = unavailable.Throttle(unavailable.SNAPSHOT_EVERY)


def database_unavailable(exc: DBAPIError) -> Any:
    """Flask error handler for SQLAlchemy's DBAPIError: a 503 when the database cannot be
    had, else the error goes on as it would have (a 500)."""
    found = classify(exc)
    answer = unavailable.answer(found, gone=exc.connection_invalidated or _connecting(exc))
    if answer is None:
        raise exc
    if report_throttle.ready():
        logger.error("%s", _report(found))
    try:
        page = render_template("503.html", retry_after=answer.retry_after, quota=answer.quota)
        response = Response(page, status=503, mimetype="text/html")
    except TemplateNotFound:
        response = Response(answer.body, status=503, mimetype="text/plain")
    response.headers["Retry-After"] = str(answer.retry_after)
    return response


def _connecting(exc: DBAPIError) -> bool:
    """The error came from a connect (SQLAlchemy wraps it without a statement)."""
    return exc.statement is None


def _report(found: Any) -> str:
    extension: Any = current_app.extensions["pa_dbhealth"]
    options = extension.options(current_app)
    seen: set[tuple[str, str]] = set()
    lines = []
    for name, engine in extension.engines(current_app).items():
        key = engine_account(engine)
        if key in seen:
            continue
        seen.add(key)
        held = account_holders_of(engine, options)
        lines.append(f"{unavailable.head(found, name)} {unavailable.holders_line(held.holders)}")
    return " ".join(lines)
