"""PARK with ConnectionHygieneMiddleware: a request's connection is parked once a short
response is sent (Django's close as the request ends), so the response does not wait for
it; before the response when it is long (a slow reader must not hold the slot), when a
connect stands in the line, or when the connection cannot be parked. Against the capped
server and the host's real line; the middleware is called as Django's handler calls it,
and ``close_old_connections`` is what Django runs once the response is sent.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import AddAlias
from django.db import DatabaseError, close_old_connections, connections
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory, override_settings

from pa_dbhealth.core import line as lines
from pa_dbhealth.core import parking
from pa_dbhealth.middleware import SHORT_RESPONSE, ConnectionHygieneMiddleware

ALIAS = "parked_after"

pytestmark = pytest.mark.usefixtures("unblocked_db")


@pytest.fixture
def site(
    retrying_line: tuple[dict[str, Any], lines.Line], temporary_alias: AddAlias
) -> Iterator[tuple[Callable[..., tuple[HttpResponse, bool]], lines.Line]]:
    """``request(body_bytes, statement)``: one request through the middleware whose view
    runs ``statement`` on the alias (CONN_MAX_AGE = 0, PARK on; an error is caught and the
    view answers all the same); returns the response and whether the connection was
    parked (or closed) before it went out."""
    settings_dict, line = retrying_line
    temporary_alias(ALIAS, {**settings_dict, "CONN_MAX_AGE": 0})

    def request(body: int = 2, statement: str = "SELECT 1") -> tuple[HttpResponse, bool]:
        def view(request: HttpRequest) -> HttpResponse:
            with connections[ALIAS].cursor() as cursor, contextlib.suppress(DatabaseError):
                cursor.execute(statement)
            return HttpResponse(b"x" * body)

        response = ConnectionHygieneMiddleware(view)(RequestFactory().get("/"))
        before = connections[ALIAS].connection is None
        close_old_connections()  # Django's request_finished, once the response is sent
        return response, before

    with override_settings(PA_DBHEALTH={"PARK": True, "CONNECT_RETRY": 10.0}):
        yield request, line
        parking.LOT.release_due(everything=True)


def test_parked_once_a_short_response_is_sent(site: Any) -> None:
    request, line = site
    response, before = request()
    assert response.status_code == 200
    assert not before, "the response waited for the connection to be parked"
    assert parking.LOT.count(ALIAS) == 1
    assert line.free == 2  # its token stays with it, parked
    taken = parking.LOT.taken
    request()
    assert parking.LOT.taken == taken + 1 and parking.LOT.count(ALIAS) == 1


def test_parked_before_a_long_response(site: Any) -> None:
    request, _line = site
    _response, before = request(body=SHORT_RESPONSE + 1)
    assert before, "a slow reader of a long response would hold the slot"
    assert parking.LOT.count(ALIAS) == 1


def test_given_up_before_the_response_when_someone_waits(site: Any) -> None:
    request, line = site
    request()
    assert line.take_head(0)  # a connect of this host stands in the line
    try:
        _response, before = request()
        assert before, "a waiter would wait for the response to be sent"
        assert parking.LOT.count(ALIAS) == 0
    finally:
        line.leave_head()


def test_a_connection_that_erred_is_closed_before_the_response(site: Any) -> None:
    request, line = site
    response, before = request(statement="SELEC 1")  # the view answers 200 all the same
    assert response.status_code == 200
    assert before, "an erred connection is judged before the response, as ever"
    assert parking.LOT.count(ALIAS) == 0
    assert line.free == 3
