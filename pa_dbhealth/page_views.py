"""The status page, ``dbhealth/page/``: what a person opens when the site is down.

Anyone gets the overall status (ok, warning, critical) and nothing else. The details (each
alias's connections against the cap, who holds each one, the audit's findings, a form to
free idle connections) need the health token (``PA_DBHEALTH["HEALTH_TOKEN"]``), entered
once into the page's form and then kept in a signed cookie, or a staff user. Every POST is
CSRF-protected (``csrf_protect``, so the site needs no ``CsrfViewMiddleware``).

At a full cap the page still answers at once: the probe is one bounded look with a single
connect attempt (``health.check``), the holders come from the registry (no database), and
the staff check, which reads the session from the database, is made only when the probe
found every database answering, with a single connect attempt.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import Any, TypeVar

from django.db import DatabaseError, connections, transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.middleware.csrf import get_token
from django.utils.cache import patch_vary_headers
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_http_methods

from pa_dbhealth import audit, conf, holders, server_version, views
from pa_dbhealth.alias_look import look_at_alias
from pa_dbhealth.core.findings import Finding
from pa_dbhealth.core.health import DatabaseHealth, Report
from pa_dbhealth.core.page import access as page_access
from pa_dbhealth.core.page import flow as page_flow
from pa_dbhealth.core.registry import Found, Holder
from pa_dbhealth.core.registry import holders as account_holders
from pa_dbhealth.core.retry import single_attempt
from pa_dbhealth.core.sign_in_limit import SignInAttempts
from pa_dbhealth.health import check, shared_status

T = TypeVar("T")

CSRF_FIELD = "csrfmiddlewaretoken"
HINTS = page_flow.Hints(
    sign_in="Enter the health token (PA_DBHEALTH['HEALTH_TOKEN']) to see who holds the "
    "connections, or sign in to the site as a staff user.",
    enable="Details are off: set PA_DBHEALTH['HEALTH_TOKEN'] to a secret to see who holds the "
    "connections here, or sign in to the site as a staff user.",
)


class DjangoSite:
    """The page's view of ``DATABASES`` (or of the URLconf's ``databases``)."""

    errors = (DatabaseError,)

    def __init__(self, databases: Sequence[str] | None) -> None:
        self.names = list(connections) if databases is None else list(databases)
        self.cap = conf.get_settings().CONNECTION_LIMIT

    def report(self) -> Report:
        return check(self.names)

    def status(self, fresh_for: float) -> Report:
        return shared_status(self.names, fresh_for)

    def holders(self, name: str) -> tuple[Found, list[Holder]]:
        wrapper = connections[name]
        where = holders.server_of(wrapper.settings_dict, wrapper.vendor)
        held = account_holders.read(holders.directory(), *where)
        return held.found, held.holders

    def keeps(self, name: str) -> bool:
        return connections[name].connection is not None

    def findings(self, result: DatabaseHealth, ask: bool) -> list[Finding]:
        ask = ask or server_version.refused_in(result.detail)  # E031 needs the version
        found = audit.audit_alias(result.alias, offline=not ask).findings
        return [*audit.site_findings(), *found]

    def look(self, name: str, question: Callable[[Any], T]) -> T:
        return look_at_alias(name, question)


def _secured(response: HttpResponse) -> HttpResponse:
    for header, value in page_access.HEADERS.items():
        response[header] = value
    patch_vary_headers(response, ("Cookie",))
    return response


def _signed_in(request: HttpRequest, token: str | None) -> bool:
    kept = request.get_signed_cookie(
        page_access.COOKIE, default=None, salt=page_access.SALT, max_age=page_access.MAX_AGE
    )
    return page_access.granted(kept, token)


def _is_staff(request: HttpRequest) -> bool:
    """A staff user, when the session can be read with a single connect attempt (the page
    asks only when the probe found every database answering)."""
    with single_attempt():
        return views.is_staff(request)


@transaction.non_atomic_requests
@csrf_protect
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def page(request: HttpRequest, databases: Sequence[str] | None = None) -> HttpResponse:
    """The status page of every database in ``DATABASES`` (or of ``databases``, a URLconf
    kwarg). GET: the page; POST: sign in or out, or free idle connections."""
    token = conf.get_settings().HEALTH_TOKEN
    url = request.path
    visitor = page_flow.Visitor(
        form=request.POST if request.method == "POST" else None,
        signed_in=_signed_in(request, token),
        is_staff=lambda: _is_staff(request),
        address=views.client_address(request),
        attempts=SignInAttempts(holders.directory()),
    )
    csrf = (CSRF_FIELD, get_token(request))
    answer = page_flow.respond(DjangoSite(databases), visitor, token, url, csrf, HINTS)
    if isinstance(answer, page_flow.Answer):
        response = HttpResponse(answer.html, status=answer.status, content_type="text/html")
        if answer.retry_after is not None:
            response["Retry-After"] = str(answer.retry_after)
        return _secured(response)
    response = _secured(HttpResponseRedirect(url))
    response.status_code = HTTPStatus.SEE_OTHER  # the page again, as a GET
    if not answer.sign_in:
        response.delete_cookie(page_access.COOKIE, path=url, samesite="Strict")
        return response
    assert token is not None  # a sign-in needs the token
    response.set_signed_cookie(
        page_access.COOKIE,
        page_access.grant(token),
        salt=page_access.SALT,
        max_age=page_access.MAX_AGE,
        path=url,
        secure=request.is_secure(),
        httponly=True,
        samesite="Strict",
    )
    return response
