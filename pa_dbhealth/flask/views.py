"""The health view as a Blueprint, at ``/dbhealth/``: live connection counts as JSON or
Prometheus text, with the Django view's access rules.

Anyone gets the overall status (and the HTTP code that goes with it), so an uptime monitor
needs no secret; the figures need ``Authorization: Bearer <HEALTH_TOKEN>`` (compared in
constant time). Responses are never cached (``no-store``) and vary on ``Authorization``
and ``Accept``; only GET and HEAD are allowed.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from flask import Blueprint, Response, current_app, request

from pa_dbhealth.core import prometheus, registry, waits_host
from pa_dbhealth.core.health import Status
from pa_dbhealth.core.page import access as page_access
from pa_dbhealth.core.sign_in_limit import SignInAttempts
from pa_dbhealth.flask.page import page_view, shared_status
from pa_dbhealth.sqlalchemy import behind, events, health, tracker

FORMATS = ("json", "prometheus")


def _bearer_access(options: Any) -> tuple[bool, int | None]:
    """``(granted, wait)`` of the request's ``Bearer`` token (``page_access.attempt``)."""
    given = page_access.bearer(request.headers.get("Authorization", ""))
    if given is None:
        return False, None
    attempts = SignInAttempts(registry.directory(options.REGISTRY_DIR))
    return page_access.attempt(given, options.HEALTH_TOKEN, attempts, request.remote_addr or "")


def _wants_prometheus() -> bool:
    return prometheus.wanted(request.args.get("format"), request.headers.get("Accept", ""))


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "max-age=0, no-cache, no-store, must-revalidate, private"
    response.vary.update(("Authorization", "Accept"))
    return response


def _json(body: dict[str, Any], status: HTTPStatus) -> Response:
    # As Django's JsonResponse writes it: keys in their order, the same bytes.
    return Response(json.dumps(body), status=status, mimetype="application/json")


def health_view() -> Response:
    """Status of every engine of the app: JSON (200 for ok and warning, 503 for critical)
    or, with ``?format=prometheus`` or an ``Accept`` asking for text, the metrics (always
    200: a database that is down is ``pa_dbhealth_up 0``)."""
    fmt = request.args.get("format")
    if fmt is not None and fmt not in FORMATS:
        error = {"error": f"format must be one of {', '.join(FORMATS)}"}
        return _no_store(_json(error, HTTPStatus.BAD_REQUEST))
    extension: Any = current_app.extensions["pa_dbhealth"]
    options = extension.options(current_app)
    engines = extension.engines(current_app)
    full, wait = _bearer_access(options)
    if wait is not None:
        error = {"error": f"too many wrong tokens: try again in {wait} s"}
        refused = _no_store(_json(error, HTTPStatus.TOO_MANY_REQUESTS))
        refused.headers["Retry-After"] = str(wait)
        return refused
    if full:
        report = health.check(engines, options=options)
    else:  # the status anonymous views share: no connection of its own
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        report = shared_status(app, engines, options)
    for engine in engines.values():
        state = events.installed(engine)
        if state is not None:
            state.checkouts.sweep()  # log the probable leaks the figures will count
    process = tracker.figures() if full else None
    waits = waits_host.host_figures(options.REGISTRY_DIR) if full else None
    if _wants_prometheus():
        text = prometheus.render(report, full=full, process=process, waits=waits)
        return _no_store(Response(text, content_type=prometheus.CONTENT_TYPE))
    body: dict[str, Any] = {"status": report.status.value}
    if full:
        body["databases"] = {db.alias: db.as_dict(process) for db in report.databases}
        body["pins"] = [finding.as_dict() for finding in behind.pin_findings(options)]
        body["findings"] = [f.as_dict() for f in extension.registry_findings(current_app)]
        body["waits"] = waits
    critical = report.status is Status.CRITICAL
    return _no_store(_json(body, HTTPStatus.SERVICE_UNAVAILABLE if critical else HTTPStatus.OK))


def blueprint(url_prefix: str = "/dbhealth") -> Blueprint:
    """A Blueprint serving the health view at ``url_prefix + "/"`` and the status page at
    ``url_prefix + "/page/"``."""
    bp = Blueprint("pa_dbhealth", __name__, url_prefix=url_prefix)
    bp.add_url_rule("/", "health", health_view, methods=["GET"])
    bp.add_url_rule("/page/", "page", page_view, methods=["GET", "POST"])
    return bp
