"""The status page on the Flask blueprint (``/dbhealth/page/``) with Flask's test client
against the capped server: the same page as Django's, with the Flask face's own signed
cookie and CSRF token."""

from __future__ import annotations

import html
import os
import re
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import pytest
from conftest import wait_until_settled
from django.db import connections
from flask import Flask
from flask.testing import FlaskClient
from holders import Holders
from test_flask import make_app  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.matrix_once, pytest.mark.django_db(transaction=True)]

TOKEN = "a-health-token-for-the-flask-page"
PAGE = "/dbhealth/page/"
FITTED = {"pool_size": 1, "max_overflow": 0, "pool_recycle": 280}


@pytest.fixture(autouse=True)
def no_django_connection(admin: Any) -> None:
    """This thread holds no Django connection: the count is the test's holders and the
    page's own look."""
    connections["default"].close()
    wait_until_settled(admin)


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:  # noqa: F811
    made = make_app(FITTED, pa_dbhealth={"HEALTH_TOKEN": TOKEN})
    made.secret_key = "a-secret-key-for-the-tests"
    return made


def text(response: Any) -> str:
    return html.unescape(response.get_data(as_text=True))


def csrf_of(client: FlaskClient) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get(PAGE).get_data(True))
    assert found
    return found.group(1)


def post(client: FlaskClient, **fields: Any) -> Any:
    return client.post(PAGE, data={"csrf_token": csrf_of(client), **fields})


def signed_in(app: Flask) -> FlaskClient:
    client = app.test_client()
    assert post(client, action="login", token=TOKEN).status_code == HTTPStatus.SEE_OTHER
    return client


def test_anonymous_visitors_see_the_status_alone(app: Flask, holders: Holders) -> None:
    holders.named("poller")
    response = app.test_client().get(PAGE)
    page = text(response)
    assert response.status_code == HTTPStatus.OK and 'id="status">warning<' in page
    assert 'name="token"' in page and "app.config['PA_DBHEALTH']['HEALTH_TOKEN']" in page
    assert "poller" not in page and f"pid {os.getpid()}" not in page and "default" not in page
    assert "no-store" in response.headers["Cache-Control"]
    assert response.headers["X-Frame-Options"] == "DENY"


def test_the_token_signs_in_and_the_page_names_the_holders(
    app: Flask, holders: Holders, admin: Any
) -> None:
    poller = holders.named("poller")  # a Django thread of this process: the same registry
    client = app.test_client()
    response = post(client, action="login", token=TOKEN)
    assert response.status_code == HTTPStatus.SEE_OTHER
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("pa_dbhealth_page=") and TOKEN not in cookie
    for attribute in ("HttpOnly", "SameSite=Strict", "Max-Age=28800", f"Path={PAGE}"):
        assert attribute in cookie
    assert "Secure" not in cookie  # plain HTTP here
    wait_until_settled(admin)  # the sign-in's look is gone
    page = text(client.get(PAGE))
    assert f'data-id="{poller}"' in page and "<td>poller</td>" in page
    assert 'id="count-default">2 of 3<' in page  # the poller and the page's own look
    assert "Fix: put fresh_connections around the thread" in page
    assert "pa_dbhealth.I" in page or "pa_dbhealth.W" in page  # the Flask audit's findings
    assert 'http-equiv="refresh" content="5; url=/dbhealth/page/"' in page


def test_a_wrong_token_or_a_tampered_cookie_is_anonymous(app: Flask) -> None:
    client = app.test_client()
    refused = post(client, action="login", token=TOKEN + "x")
    assert refused.status_code == HTTPStatus.FORBIDDEN and "Wrong token" in text(refused)
    client = signed_in(app)
    assert 'id="db-default"' in text(client.get(PAGE))
    value = client.get_cookie("pa_dbhealth_page", path=PAGE)
    assert value is not None
    client.set_cookie("pa_dbhealth_page", value.value[:-2] + "xx", path=PAGE)
    assert 'id="db-default"' not in text(client.get(PAGE))


def test_every_post_needs_the_cookies_csrf_token(app: Flask, raw_connections: Any) -> None:
    client = signed_in(app)
    (raw,) = raw_connections(1)
    fields = {"action": "kill", "confirm": "yes", "database": "default", "min_idle": "0"}
    for wrong in ({}, {"csrf_token": "not-the-one"}):
        response = client.post(PAGE, data={**fields, "include_unknown": "1", **wrong})
        assert response.status_code == HTTPStatus.FORBIDDEN and "CSRF" in text(response)
    assert app.test_client().post(PAGE, data={"action": "login"}).status_code == 403
    raw.cursor().execute("SELECT 1")  # not killed


def test_freeing_an_idle_connection_confirmed(
    app: Flask, raw_connections: Any, account_ids: Any
) -> None:
    client = signed_in(app)
    (raw,) = raw_connections(1)
    time.sleep(1.1)
    preview = text(post(client, action="preview", database="default", min_idle="1"))
    assert f'name="id" value="{raw.thread_id()}"' in preview
    assert raw.thread_id() in account_ids()  # nothing killed before the confirmation
    fields = {"action": "kill", "confirm": "yes", "database": "default", "min_idle": "1"}
    done = text(post(client, id=[raw.thread_id()], include_unknown="1", **fields))
    assert f"default: killed {raw.thread_id()}." in done
    assert raw.thread_id() not in account_ids()


def test_without_a_secret_key_the_page_shows_the_status_alone(
    make_app: Callable[..., Flask],  # noqa: F811
) -> None:
    app = make_app(FITTED, pa_dbhealth={"HEALTH_TOKEN": TOKEN})
    response = app.test_client().get(PAGE)
    page = text(response)
    assert "set app.secret_key" in page and 'name="token"' not in page
    assert "pa_dbhealth_page" not in response.headers.get("Set-Cookie", "")


def test_at_a_full_cap_the_page_shows_the_registry_at_once(app: Flask, holders: Holders) -> None:
    client = signed_in(app)
    held = [holders.named(name) for name in ("worker-a", "worker-b", "worker-c")]
    started = time.monotonic()
    page = text(client.get(PAGE))
    assert time.monotonic() - started < 5
    assert 'id="count-default">3 of 3<' in page
    assert "The server could not be asked (connection cap reached: (1226)" in page
    for conn_id in held:
        assert f'data-id="{conn_id}"' in page
    freeing = text(post(client, action="preview", database="default", min_idle="0"))
    assert "the page could not open a connection to free others" in freeing


def test_under_a_url_prefix_the_forms_and_the_cookie_stay_inside_the_app(app: Flask) -> None:
    """Mounted at /app (DispatcherMiddleware, SCRIPT_NAME): sign-in works, and every form,
    redirect and cookie names the page's path under the prefix."""
    from werkzeug.middleware.dispatcher import DispatcherMiddleware
    from werkzeug.test import Client
    from werkzeug.wrappers import Response as Plain

    mounted = DispatcherMiddleware(Plain("the site's root", 404), {"/app": app.wsgi_app})
    client = Client(mounted)
    page = client.get("/app" + PAGE)
    body = page.get_data(as_text=True)
    assert f'action="/app{PAGE}"' in body
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', body)
    assert csrf is not None
    signed = client.post(
        "/app" + PAGE, data={"csrf_token": csrf.group(1), "action": "login", "token": TOKEN}
    )
    assert signed.status_code == HTTPStatus.SEE_OTHER
    assert signed.headers["Location"].endswith(f"/app{PAGE}")
    assert f"Path=/app{PAGE}" in signed.headers["Set-Cookie"]
    assert 'id="db-default"' in client.get("/app" + PAGE).get_data(as_text=True)
