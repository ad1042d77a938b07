"""The status page (``dbhealth/page/``) with Django's test client against the capped server:
who sees what (token form, signed cookie, staff, anonymous), CSRF, a full cap, and freeing
idle connections (only the account's own, idle, outside a transaction)."""

from __future__ import annotations

import contextlib
import html
import os
import re
import time
from collections.abc import Callable, Iterator
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
from conftest import AddAlias, account_connection_ids, wait_until_settled
from django.contrib.auth.models import User
from django.db import connections
from django.test import Client
from django.urls import include, path, reverse
from faults import frozen
from holders import Holders

from pa_dbhealth import page_views, sandbox
from pa_dbhealth.core import status_cache

mysql = pytest.mark.django_db(transaction=True)
TOKEN = "a-health-token-for-the-page"
PAGE = "/page/"

urlpatterns = [
    path("page/", page_views.page, {"databases": ["default"]}),
    path("watched/page/", page_views.page, {"databases": ["watched"]}),
    path("unreachable/page/", page_views.page, {"databases": ["unreachable"]}),
    path("own/page/", page_views.page, {"databases": ["own"]}),
    path("dbhealth/", include("pa_dbhealth.urls")),
]
pytestmark = pytest.mark.urls(__name__)


@pytest.fixture(autouse=True)
def settled(admin: Any) -> Iterator[None]:
    connections["default"].close()  # start as a fresh request would: no connection
    wait_until_settled(admin)
    yield
    connections.close_all()


@pytest.fixture
def token(settings: Any, tmp_path: Path) -> str:
    settings.PA_DBHEALTH = {"HEALTH_TOKEN": TOKEN, "REGISTRY_DIR": str(tmp_path / "holders")}
    return TOKEN


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def post(
    client: Client, url: str = PAGE, settle: Callable[[], None] | None = None, **fields: Any
) -> Any:
    """A POST of the page's forms, with the CSRF token of the page a GET shows; ``settle``
    waits in between for the server to let go of the GET's look (a person is slower)."""
    page = client.get(url).content.decode()
    if settle is not None:
        settle()
    return client.post(url, {"csrfmiddlewaretoken": csrf_of(page), **fields})


def sign_in(client: Client, given: str = TOKEN, url: str = PAGE, **extra: Any) -> Any:
    client.get(url)  # the CSRF cookie (the page shows no form without a token configured)
    csrf = client.cookies["csrftoken"].value
    data = {"csrfmiddlewaretoken": csrf, "action": "login", "token": given}
    return client.post(url, data, **extra)


def signed_in_client(url: str = PAGE) -> Client:
    client = Client(enforce_csrf_checks=True)
    assert sign_in(client, url=url).status_code == HTTPStatus.SEE_OTHER
    return client


def text(response: Any) -> str:
    """The page's HTML with its character references read (``'`` for ``&#x27;``)."""
    return html.unescape(response.content.decode())


# --- who sees what ------------------------------------------------------------------------


@mysql
def test_anonymous_visitors_see_the_status_alone(
    token: str, holders: Holders, server: sandbox.SandboxInfo
) -> None:
    holders.named("poller")
    response = Client().get(PAGE)
    assert response.status_code == HTTPStatus.OK
    html = text(response)
    assert 'id="status">warning<' in html  # the poller and the probe: one left
    assert 'name="token"' in html and "PA_DBHEALTH['HEALTH_TOKEN']" in html
    for detail in ("poller", f"pid {os.getpid()}", server.host, str(server.port), "default"):
        assert detail not in html
    assert 'http-equiv="refresh"' not in html  # it would wipe a token being typed
    assert "no-store" in response["Cache-Control"]
    assert response["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]


@mysql
def test_without_a_token_the_page_says_how_to_enable_the_details(
    settings: Any, holders: Holders
) -> None:
    settings.PA_DBHEALTH = {}
    holders.named("poller")
    client = Client(enforce_csrf_checks=True)
    html = text(client.get(PAGE))
    assert "set PA_DBHEALTH['HEALTH_TOKEN']" in html
    assert 'name="token"' not in html and "poller" not in html
    assert 'http-equiv="refresh" content="5' in html  # nothing to type: it refreshes
    refused = sign_in(client, given="")
    assert refused.status_code == HTTPStatus.FORBIDDEN and "Wrong token" in text(refused)


@mysql
def test_the_token_signs_in_for_8_hours_with_a_signed_httponly_strict_cookie(
    token: str, holders: Holders, admin: Any
) -> None:
    poller = holders.named("poller")
    client = Client(enforce_csrf_checks=True)
    response = sign_in(client, secure=True, HTTP_REFERER="https://testserver/page/")
    assert response.status_code == HTTPStatus.SEE_OTHER and response["Location"] == PAGE
    cookie = response.cookies["pa_dbhealth_page"]
    assert cookie["httponly"] and cookie["secure"] and cookie["samesite"] == "Strict"
    assert cookie["max-age"] == 8 * 3600 and cookie["path"] == PAGE
    assert TOKEN not in cookie.value
    wait_until_settled(admin)  # the sign-in's look is gone
    html = text(client.get(PAGE))
    assert f'data-id="{poller}"' in html
    assert f"pid {os.getpid()} on" in html and "<td>poller</td>" in html
    assert "probable leak: its thread 'poller' is not a request" in html
    assert "Fix: put fresh_connections around the thread" in html
    assert 'id="count-default">2 of 3<' in html  # the poller and the page's own look
    assert 'http-equiv="refresh" content="5; url=/page/"' in html
    assert "pa_dbhealth.W" in html or "pa_dbhealth.I" in html or "No findings" in html


@mysql
def test_a_wrong_token_is_refused_and_sets_no_cookie(token: str) -> None:
    client = Client(enforce_csrf_checks=True)
    response = sign_in(client, given=TOKEN + "x")
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert "Wrong token" in text(response) and "pa_dbhealth_page" not in response.cookies
    assert 'id="db-default"' not in text(client.get(PAGE))


@mysql
def test_a_token_set_with_a_newline_signs_in_as_typed(settings: Any) -> None:
    settings.PA_DBHEALTH = {"HEALTH_TOKEN": f"  {TOKEN}\n"}  # read from a file
    assert sign_in(Client(enforce_csrf_checks=True)).status_code == HTTPStatus.SEE_OTHER
    refused = sign_in(Client(enforce_csrf_checks=True), given=f"  {TOKEN}\n"[:-2])
    assert refused.status_code == HTTPStatus.FORBIDDEN


@mysql
def test_a_refused_registry_is_explained_with_a_safe_fix(settings: Any) -> None:
    settings.PA_DBHEALTH = {"HEALTH_TOKEN": TOKEN, "REGISTRY_DIR": "/tmp"}
    assert "/tmp" not in text(Client().get(PAGE))  # anonymous: the status alone
    page = text(signed_in_client().get(PAGE))
    assert "/tmp is open to other users (mode 1777): not used" in page
    assert "pa_dbhealth.E028" in page and "Remove PA_DBHEALTH['REGISTRY_DIR']" in page
    assert "chmod" not in page


@mysql
def test_a_tampered_or_outdated_cookie_is_anonymous(token: str, settings: Any) -> None:
    client = signed_in_client()
    assert 'id="db-default"' in text(client.get(PAGE))
    value = client.cookies["pa_dbhealth_page"].value
    client.cookies["pa_dbhealth_page"] = value[:-1] + ("A" if value[-1] != "A" else "B")
    html = text(client.get(PAGE))
    assert 'id="db-default"' not in html and 'name="token"' in html
    client = signed_in_client()
    settings.PA_DBHEALTH = {**settings.PA_DBHEALTH, "HEALTH_TOKEN": "a-new-token"}
    assert 'id="db-default"' not in text(client.get(PAGE))  # a new token signs everyone out


@mysql
def test_signing_out_deletes_the_cookie(token: str) -> None:
    client = signed_in_client()
    response = post(client, action="logout")
    assert response.status_code == HTTPStatus.SEE_OTHER
    assert response.cookies["pa_dbhealth_page"].value == ""
    assert 'id="db-default"' not in text(client.get(PAGE))


@mysql
def test_a_staff_user_sees_the_details_without_the_token(token: str) -> None:
    staff = User.objects.create_user("ops", is_staff=True)
    client = Client()
    client.force_login(staff)
    assert 'id="db-default"' in text(client.get(PAGE))
    staff.is_staff = False
    staff.save()
    assert 'id="db-default"' not in text(client.get(PAGE))


@mysql
def test_post_without_the_csrf_token_is_403(token: str, raw_connections: Any) -> None:
    client = signed_in_client()
    (raw,) = raw_connections(1)
    response = client.post(
        PAGE, {"action": "kill", "confirm": "yes", "database": "default", "min_idle": "0"}
    )
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert "CSRF" in text(response)
    raw.cursor().execute("SELECT 1")  # not killed


def test_the_included_urlconf_serves_the_page() -> None:
    assert reverse("pa_dbhealth:page") == "/dbhealth/page/"


# --- a full cap, a server that does not answer ---------------------------------------------


@mysql
def test_at_a_full_cap_the_page_answers_at_once_from_the_registry(
    token: str, holders: Holders
) -> None:
    client = signed_in_client()
    held = [holders.named(name) for name in ("worker-a", "worker-b", "worker-c")]
    time.sleep(status_cache.FRESH_FOR)  # the sign-in's status, which anonymous views share
    start = time.monotonic()
    anonymous = Client().get(PAGE)
    assert anonymous.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert 'id="status">critical<' in text(anonymous) and "worker-a" not in text(anonymous)
    html = text(client.get(PAGE))
    assert time.monotonic() - start < 5
    assert 'id="count-default">3 of 3<' in html
    assert "The server could not be asked (connection cap reached: (1226)" in html
    assert "cannot see connections of processes without pa_dbhealth" in html
    for conn_id, name in zip(held, ("worker-a", "worker-b", "worker-c"), strict=True):
        assert f'data-id="{conn_id}"' in html and f"<td>{name}</td>" in html
    # Counted as dbconnections counts it, in red; no action that needs a connection.
    assert "(the server refused this page's look): 3 named below, 0 not tracked" in html
    assert '<span class="critical">' in html
    assert "Free idle connections" not in html and 'id="way-out-default"' in html
    assert "reload the web app" in html
    assert "pa_dbhealth.I019" in html and "pa_dbhealth.I015" not in html  # settings alone
    assert "Judged on the settings alone: the server was not asked again." in html


@mysql
def test_at_a_cap_held_by_an_outsider_the_page_counts_the_untracked(
    token: str, holders: Holders, raw_connections: Any
) -> None:
    client = signed_in_client()
    holders.named("worker-a")
    holders.named("worker-b")
    raw_connections(1)  # a console: not tracked
    html = text(client.get(PAGE))
    assert 'id="count-default">3 of 3<' in html
    assert "(the server refused this page's look): 2 named below, 1 not tracked" in html
    assert 'value="3"' in html  # the meter is full: red
    assert "Free idle connections" not in html


@mysql
def test_with_room_the_page_offers_to_free_idle_connections(token: str) -> None:
    html = text(signed_in_client().get(PAGE))
    assert "Free idle connections" in html and 'id="way-out-default"' not in html


@mysql
def test_at_a_full_cap_idle_is_in_seconds_and_the_registrys_limits_one_sentence(
    token: str, holders: Holders
) -> None:
    client = signed_in_client()
    started = time.time()
    for name in ("worker-a", "worker-b", "worker-c"):
        holders.named(name)
    time.sleep(1.2)
    html = text(client.get(PAGE))
    rows = re.findall(r'<tr class="connection" data-id="\d+">(.*?)</tr>', html)
    assert len(rows) == 3
    for row in rows:
        idle = re.findall(r"<td>(.*?)</td>", row)[5]
        shown = re.fullmatch(
            r'<span title="since its last use, as the registry says">(\d+) s</span>', idle
        )
        assert shown is not None, idle
        assert 1 <= int(shown[1]) <= time.time() - started + 1
    (sentence,) = re.findall(r'<p class="muted" id="cannot-know-default">(.*?)</p>', html)
    link = (
        "https://github.com/pa-dbhealth/pa-dbhealth/blob/main/docs/holders.md#what-it-cannot-know"
    )
    assert f'(<a href="{link}">what the registry cannot know</a>).' in sentence
    assert sentence.startswith("It also misses connections a request opened in its last 5 s")
    assert re.sub(r"<a .*?</a>", "", sentence).count(".") == 1  # one sentence
    assert "What the registry cannot know:" not in html
    docs = Path(__file__).resolve().parent.parent / "docs" / "holders.md"
    assert "\n### What it cannot know\n" in docs.read_text()  # the link's anchor


@mysql
def test_at_a_full_cap_a_staff_user_falls_back_to_the_token_form(
    token: str, holders: Holders
) -> None:
    client = Client()
    client.force_login(User.objects.create_user("ops", is_staff=True))
    connections.close_all()
    holders.hold(3)
    start = time.monotonic()
    html = text(client.get(PAGE))
    assert time.monotonic() - start < 5
    assert 'name="token"' in html and 'id="db-default"' not in html


@mysql
def test_at_a_full_cap_freeing_says_why_it_cannot(token: str, holders: Holders) -> None:
    client = signed_in_client()
    holders.hold(3)
    response = post(client, action="preview", database="default", min_idle="0")
    html = text(response)
    assert "the page could not open a connection to free others" in html
    assert "1226" in html and "reload the web app" in html


@pytest.mark.usefixtures("unblocked_db")
def test_an_unreachable_server_is_critical_within_the_connect_timeout(token: str) -> None:
    client = signed_in_client("/unreachable/page/")
    start = time.monotonic()
    response = client.get("/unreachable/page/")
    assert time.monotonic() - start < 8  # the alias's connect_timeout 2 s, bounded twice
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert "The server could not be asked (server unreachable: " in text(response)


@pytest.mark.usefixtures("unblocked_db")
def test_a_frozen_server_gets_its_page_within_the_bound(
    token: str, settings: Any, spare_server: sandbox.SandboxInfo, temporary_alias: AddAlias
) -> None:
    """SIGSTOP: the kernel still accepts, nothing answers. The page answers within the
    probe's bound and does not ask the frozen server again for the audit."""
    temporary_alias("own", spare_server.database_settings())
    settings.PA_DBHEALTH = {**settings.PA_DBHEALTH, "HEALTH_CONNECT_TIMEOUT": 1}
    client = signed_in_client("/own/page/")
    with frozen(spare_server):
        started = time.monotonic()
        response = client.get("/own/page/")
        elapsed = time.monotonic() - started
    assert elapsed < 2 * 1 + 1.5  # the connect's bound and the answer's, not TCP's minutes
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert "The server could not be asked (connection lost" in text(response)
    assert "pa_dbhealth.I019" in text(response)  # the audit judged the settings alone


# --- freeing idle connections -------------------------------------------------------------


@pytest.fixture
def watcher(
    admin: Any, server: sandbox.SandboxInfo, temporary_alias: AddAlias
) -> Iterator[Callable[[], Any]]:
    """The alias "watched": an account capped at 3 with the PROCESS privilege (the server
    shows its transactions); returns an opener of raw connections as it."""
    admin.execute("CREATE USER 'pagewatch'@'%' IDENTIFIED BY 'pw' WITH MAX_USER_CONNECTIONS 3")
    admin.execute(f"GRANT ALL ON `{server.database}`.* TO 'pagewatch'@'%'")
    admin.execute("GRANT PROCESS ON *.* TO 'pagewatch'@'%'")
    admin.execute(f"CREATE TABLE IF NOT EXISTS `{server.database}`.page_kept (id INT)")
    temporary_alias(
        "watched", {**server.database_settings(), "USER": "pagewatch", "PASSWORD": "pw"}
    )
    opened: list[Any] = []

    def open_() -> Any:
        opened.append(server.connect(user="pagewatch", password="pw", autocommit=True))
        return opened[-1]

    yield open_
    for conn in opened:
        with contextlib.suppress(Exception):  # killed by the test
            conn.close()
    admin.execute("DROP USER 'pagewatch'@'%'")


@pytest.mark.usefixtures("unblocked_db")  # "watched" is no alias of a test database
def test_freeing_kills_an_idle_connection_and_spares_one_inside_a_transaction(
    token: str, watcher: Callable[[], Any], admin: Any
) -> None:
    url = "/watched/page/"
    client = signed_in_client(url)
    clean, busy = watcher(), watcher()
    held = sorted([clean.thread_id(), busy.thread_id()])

    def settle() -> None:  # the page's look has left: the cap has room for the next one
        deadline = time.monotonic() + 5
        while account_connection_ids(admin, "pagewatch") != held:
            assert time.monotonic() < deadline, "the page's look is still listed"
            time.sleep(0.01)

    busy.cursor().execute("BEGIN")
    busy.cursor().execute("INSERT INTO page_kept VALUES (1)")  # then idle, inside it
    time.sleep(1.1)  # idle for a second: its transaction shows for sure
    preview = post(client, url, settle, action="preview", database="watched", min_idle="1")
    html = text(preview)
    assert preview.status_code == HTTPStatus.OK and 'http-equiv="refresh"' not in html
    for conn in (clean, busy):
        assert f'name="id" value="{conn.thread_id()}"' in html
    settle()  # nothing killed yet
    admin.execute("SELECT CONNECTION_ID()")  # another account's connection, idle too
    (foreign,) = admin.fetchone()
    ids = [clean.thread_id(), busy.thread_id(), foreign]
    fields = {"action": "kill", "confirm": "yes", "database": "watched", "min_idle": "1"}
    done = post(client, url, settle, id=ids, **fields)
    html = text(done)
    assert f"watched: killed {clean.thread_id()}." in html
    assert f"{busy.thread_id()} (inside a transaction)" in html
    assert f"{foreign} (not (or no longer) a connection of this account)" in html
    assert clean.thread_id() not in account_connection_ids(admin, "pagewatch")
    busy.cursor().execute("SELECT COUNT(*) FROM page_kept")  # alive, its work intact
    busy.rollback()
    admin.execute("SELECT CONNECTION_ID()")
    assert admin.fetchone() == (foreign,)  # the other account's: untouched


@mysql
def test_a_connection_whose_transaction_the_server_hides_is_killed_only_when_ticked(
    token: str, raw_connections: Any, account_ids: Any
) -> None:
    client = signed_in_client()
    (raw,) = raw_connections(1)
    time.sleep(1.1)
    fields = {"action": "kill", "confirm": "yes", "database": "default", "min_idle": "1"}
    spared = text(post(client, id=[raw.thread_id()], **fields))
    assert "killed none." in spared and "the server does not show its transaction" in spared
    assert raw.thread_id() in account_ids()
    killed = text(post(client, id=[raw.thread_id()], include_unknown="1", **fields))
    assert f"killed {raw.thread_id()}." in killed
    assert raw.thread_id() not in account_ids()


@mysql
def test_nothing_idle_long_enough_means_nothing_to_free(token: str, raw_connections: Any) -> None:
    client = signed_in_client()
    raw_connections(1)
    html = text(post(client, action="preview", database="default", min_idle="600"))
    assert "nothing to free" in html


@mysql
@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"database": "nope", "min_idle": "1"}, "database: 'nope' is not one of 'default'"),
        ({"database": "default", "min_idle": "soon"}, "min_idle: 'soon' is not a number"),
        ({"database": "default", "min_idle": "1", "id": "x"}, "id: each must be"),
        ({"database": "default", "min_idle": "1", "confirm": "no"}, "confirm: a kill needs"),
    ],
)
def test_a_bad_kill_form_is_a_400_naming_the_field(
    token: str, fields: dict[str, str], named: str
) -> None:
    client = signed_in_client()
    response = post(client, action="kill", **{"confirm": "yes", **fields})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert f"Bad request: {named}" in text(response)
