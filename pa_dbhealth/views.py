"""The health view: live connection counts as JSON or Prometheus text, safe to expose.

Anyone gets the overall status (and the HTTP code that goes with it), so an uptime monitor
needs no secret; the figures need ``Authorization: Bearer <HEALTH_TOKEN>`` or a staff user.
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from django.db import Error as DatabaseError
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.cache import patch_vary_headers
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe

from pa_dbhealth import behind, conf, holders
from pa_dbhealth.core import prometheus, waits_host
from pa_dbhealth.core.page import access as page_access
from pa_dbhealth.core.sign_in_limit import SignInAttempts
from pa_dbhealth.health import Status, check, holders_of, process_figures, shared_status

FORMATS = ("json", "prometheus")


def client_address(request: HttpRequest) -> str:
    """The client's address as the server saw it (``REMOTE_ADDR``): what wrong tokens are
    counted by."""
    return str(request.META.get("REMOTE_ADDR") or "")


def _bearer_access(request: HttpRequest) -> tuple[bool, int | None]:
    """``(granted, wait)`` of the request's ``Bearer`` token (``page_access.attempt``)."""
    given = page_access.bearer(request.headers.get("Authorization", ""))
    if given is None:
        return False, None
    attempts = SignInAttempts(holders.directory())
    token = conf.get_settings().HEALTH_TOKEN
    return page_access.attempt(given, token, attempts, client_address(request))


def is_staff(request: HttpRequest) -> bool:
    """A logged-in active staff user; anonymous when the session or user cannot be read."""
    user = getattr(request, "user", None)  # only with the auth middleware
    if user is None:
        return False
    try:
        return bool(user.is_active and user.is_staff)
    except DatabaseError:  # the session or user could not be read: treat as anonymous
        return False


def _wants_prometheus(request: HttpRequest) -> bool:
    return prometheus.wanted(request.GET.get("format"), request.headers.get("Accept", ""))


@transaction.non_atomic_requests
@csrf_exempt  # it changes nothing: a POST is answered 405, not 403
@never_cache
@require_safe
def health(request: HttpRequest, databases: Sequence[str] | None = None) -> HttpResponse:
    """Status of every database in ``DATABASES`` (or of ``databases``, a URLconf kwarg).

    JSON: HTTP 200 for ok and warning, 503 for critical. ``?format=prometheus`` (or an
    ``Accept`` asking for ``text/plain``): the metrics, HTTP 200 even when a database is down.
    """
    fmt = request.GET.get("format")
    if fmt is not None and fmt not in FORMATS:
        return JsonResponse(
            {"error": f"format must be one of {', '.join(FORMATS)}"},
            status=HTTPStatus.BAD_REQUEST,
        )
    # The token first, so a monitor with it never touches the session. Without it, the
    # status anonymous views share (no connection of its own). A staff user is looked up in
    # the database: not when a database just failed, so a request cannot wait on a server
    # the probe found unreachable; then the figures are looked up afresh.
    full, wait = _bearer_access(request)
    if wait is not None:
        refused = JsonResponse(
            {"error": f"too many wrong tokens: try again in {wait} s"},
            status=HTTPStatus.TOO_MANY_REQUESTS,
        )
        refused["Retry-After"] = str(wait)
        return refused
    report = check(databases) if full else shared_status(databases)
    if not full and all(db.up for db in report.databases) and is_staff(request):
        full, report = True, check(databases)
    process = process_figures() if full else None
    waits = waits_host.host_figures(conf.get_settings().REGISTRY_DIR) if full else None
    response: HttpResponse
    if _wants_prometheus(request):
        text = prometheus.render(report, full=full, process=process, waits=waits)
        response = HttpResponse(text, content_type=prometheus.CONTENT_TYPE)
    else:
        body: dict[str, Any] = {"status": report.status.value}
        if full:
            body["databases"] = {
                db.alias: db.as_dict(process, holders_of(db)) for db in report.databases
            }
            body["pins"] = [finding.as_dict() for finding in behind.pin_findings()]
            body["findings"] = [finding.as_dict() for finding in holders.refused()]
            body["waits"] = waits
        critical = report.status is Status.CRITICAL
        status = HTTPStatus.SERVICE_UNAVAILABLE if critical else HTTPStatus.OK
        response = JsonResponse(body, status=status)
    # What a caller sees depends on its token (and its session, which Django's session
    # middleware adds to Vary itself when the staff check reads it).
    patch_vary_headers(response, ("Authorization", "Accept"))
    return response
