"""The health view against the real capped server: counts, statuses, access, cost."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
from conftest import AddAlias, account_connection_ids, wait_until_settled
from django.contrib.auth.models import User
from django.db import connections
from django.test import Client, RequestFactory, override_settings
from django.urls import reverse
from faults import frozen
from holders import Holders
from proxy import Proxy, settings_through

from pa_dbhealth import health, sandbox, views
from pa_dbhealth.core import status_cache
from pa_dbhealth.core.health import judge
from pa_dbhealth.core.vendors import AccountConnection, AccountSnapshot

mysql = pytest.mark.django_db(transaction=True)
TOKEN = "a-health-token-for-the-tests"


@pytest.fixture
def token(settings: Any) -> str:
    settings.PA_DBHEALTH = {"HEALTH_TOKEN": TOKEN}
    return TOKEN


class Settle:
    """Each test starts, and each request through ``get`` ends, once the account holds only
    what this process has open (and what it held before the request): see
    ``wait_until_settled``."""

    admin: Any = None


@pytest.fixture(autouse=True)
def settled(admin: Any) -> Iterator[None]:
    Settle.admin = admin
    wait_until_settled(admin)
    yield
    Settle.admin = None


def get(client: Client, alias: str = "default", *, bearer: str | None = None, **extra: Any) -> Any:
    headers: dict[str, Any] = {"HTTP_AUTHORIZATION": f"Bearer {bearer}"} if bearer else {}
    admin = Settle.admin
    before = account_connection_ids(admin) if admin is not None else []
    response = client.get(f"/health/{alias}/", **headers, **extra)
    if admin is not None:
        wait_until_settled(admin, allowed=before)
    return response


def closed_default() -> None:
    """Start from no Django connection, as a fresh request would."""
    connections["default"].close()


# --- the counts are the server's ---------------------------------------------------------


@mysql
@pytest.mark.parametrize("held", [0, 1])
def test_counts_equal_reality(
    client: Client, token: str, raw_connections: Any, account_ids: Any, held: int
) -> None:
    closed_default()
    raw_connections(held)
    assert len(account_ids()) == held
    response = get(client, bearer=token)
    body = response.json()
    db = body["databases"]["default"]
    assert db["vendor"] == "mysql"
    assert db["connections"] == {
        "total": held + 1,  # the health check's own connection is one of them
        "active": 1,
        "sleeping": held,
        "limit": 3,
        "headroom": 2 - held,
        "longest_idle_seconds": db["connections"]["longest_idle_seconds"],
    }
    assert db["wait_timeout"] == 300
    assert set(db["process"]) >= {"opened", "closed", "open", "leaks"}
    expected = "ok" if held == 0 else "warning"  # one connection left is a warning
    assert body["status"] == db["status"] == expected
    assert response.status_code == HTTPStatus.OK


@mysql
def test_idle_time_grows(client: Client, token: str, raw_connections: Any) -> None:
    closed_default()
    raw_connections(1)
    first = get(client, bearer=token).json()["databases"]["default"]["connections"]
    time.sleep(2.2)
    later = get(client, bearer=token).json()["databases"]["default"]["connections"]
    assert later["longest_idle_seconds"] >= first["longest_idle_seconds"] + 2


@mysql
def test_headroom_zero_is_critical_503(client: Client, token: str, raw_connections: Any) -> None:
    closed_default()
    raw_connections(2)
    response = get(client, bearer=token)
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    db = response.json()["databases"]["default"]
    assert db["status"] == "critical"
    assert db["connections"]["total"] == 3
    assert db["connections"]["headroom"] == 0
    assert "error" not in db  # the server answered: it is full, not down


@mysql
def test_own_connection_refused_by_the_cap_is_a_quick_503(
    client: Client, token: str, raw_connections: Any, settings: Any
) -> None:
    settings.PA_DBHEALTH = {"HEALTH_TOKEN": token, "CONNECT_RETRY": 30.0}
    closed_default()
    raw_connections(3)
    started = time.monotonic()
    response = get(client, bearer=token)
    assert time.monotonic() - started < 2
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    db = response.json()["databases"]["default"]
    assert db["status"] == "critical"
    assert db["error"] == "connection cap reached"
    assert db["detail"].startswith("(1226)")
    anonymous = get(client)
    assert anonymous.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert anonymous.json() == {"status": "critical"}


@pytest.mark.usefixtures("unblocked_db")
def test_the_retrying_backend_does_not_make_the_check_wait(
    client: Client, settings: Any, raw_connections: Any, retrying_alias: str
) -> None:
    settings.PA_DBHEALTH = {"HEALTH_TOKEN": TOKEN, "CONNECT_RETRY": 30.0}
    closed_default()
    assert get(client, retrying_alias).status_code == HTTPStatus.OK
    raw_connections(3)
    started = time.monotonic()
    response = get(client, retrying_alias, bearer=TOKEN)
    assert time.monotonic() - started < 2
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response.json()["databases"][retrying_alias]["error"] == "connection cap reached"
    assert type(connections[retrying_alias]).__module__ == "pa_dbhealth.backends.mysql.base"


@pytest.mark.usefixtures("unblocked_db")
def test_anonymous_callers_share_one_look_a_second(
    client: Client, settings: Any, raw_connections: Any, retrying_alias: str
) -> None:
    settings.PA_DBHEALTH = {"HEALTH_TOKEN": TOKEN}
    raw_connections(3)
    before = health.process_figures()["probes_refused"]
    for bearer in (None, None, "a-wrong-token-of-some-length", None):
        assert get(client, retrying_alias, bearer=bearer).json() == {"status": "critical"}
    assert health.process_figures()["probes_refused"] == before + 1
    time.sleep(status_cache.FRESH_FOR)
    assert get(client, retrying_alias).status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert health.process_figures()["probes_refused"] == before + 2


@pytest.mark.usefixtures("unblocked_db")
def test_a_refused_look_is_not_a_give_up(
    client: Client,
    settings: Any,
    raw_connections: Any,
    retrying_alias: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Monitoring at a full cap must not look like requests giving up: no WARNING, no
    give-up counted; the refusal has its own counter."""
    settings.PA_DBHEALTH = {"HEALTH_TOKEN": TOKEN}
    raw_connections(3)
    before = health.process_figures()
    with caplog.at_level(logging.DEBUG, logger="pa_dbhealth"):
        for _ in range(5):  # with the token: each looks afresh
            response = get(client, retrying_alias, bearer=TOKEN)
            assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    after = health.process_figures()
    assert after["connect_giveups"] == before["connect_giveups"]
    assert after["probes_refused"] == before["probes_refused"] + 5
    assert not [
        r
        for r in caplog.records
        if r.name.startswith("pa_dbhealth") and r.levelno >= logging.WARNING
    ]
    assert "for a look refused, not retried: (1226)" in caplog.text


@pytest.mark.usefixtures("unblocked_db")
def test_unreachable_server_is_503_within_the_connect_timeout(
    client: Client, token: str, settings: Any
) -> None:
    started = time.monotonic()
    response = get(client, "unreachable", bearer=token)
    assert time.monotonic() - started < 3
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    db = response.json()["databases"]["unreachable"]
    assert db["status"] == "critical"
    assert db["error"] == "server unreachable"
    assert db["connections"]["total"] is None


@pytest.fixture
def own_server(
    spare_server: sandbox.SandboxInfo, temporary_alias: AddAlias
) -> tuple[sandbox.SandboxInfo, str]:
    """A second capped server, reachable as the alias "own", for a test to stop."""
    return spare_server, temporary_alias("own", spare_server.database_settings())


@pytest.mark.usefixtures("unblocked_db")
def test_stopped_server_is_503_within_the_connect_timeout(
    client: Client, token: str, own_server: tuple[sandbox.SandboxInfo, str], settings: Any
) -> None:
    info, alias = own_server
    assert get(client, alias, bearer=token).status_code == HTTPStatus.OK
    sandbox.stop(info, remove=False)
    settings.PA_DBHEALTH = {"HEALTH_TOKEN": token, "HEALTH_CONNECT_TIMEOUT": 2}
    started = time.monotonic()
    response = get(client, alias, bearer=token)
    assert time.monotonic() - started < 2 + 1
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response.json()["databases"][alias]["error"] == "server unreachable"


@pytest.mark.usefixtures("unblocked_db")
@pytest.mark.parametrize("kept", [True, False], ids=["kept connection", "own connection"])
def test_a_frozen_server_is_503_within_the_bound(
    client: Client, token: str, own_server: tuple[sandbox.SandboxInfo, str], kept: bool
) -> None:
    """SIGSTOP: the server's kernel still accepts and acknowledges, nothing answers. The
    view must not wait for TCP to give up, and the stuck connection is not reused."""
    info, alias = own_server
    connections.settings[alias]["CONN_MAX_AGE"] = 60
    connections[alias].settings_dict["CONN_MAX_AGE"] = 60
    with override_settings(PA_DBHEALTH={"HEALTH_TOKEN": token, "HEALTH_CONNECT_TIMEOUT": 1}):
        if kept:  # a request of this thread left its connection open (CONN_MAX_AGE = 60)
            connections[alias].ensure_connection()
        with frozen(info):  # every thread of it stopped: SIGSTOP alone only asks them to
            started = time.monotonic()
            response = client.get(f"/health/{alias}/", HTTP_AUTHORIZATION=f"Bearer {token}")
            elapsed = time.monotonic() - started
    assert elapsed < 2 * 1 + 1.5  # the connect's bound and the answer's, not TCP's minutes
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    db = response.json()["databases"][alias]
    assert db["status"] == "critical"
    # A kept connection waits for an answer that never comes; a new one gives up in the
    # handshake (the driver's connect timeout: "Lost connection ... reading initial
    # communication packet").
    assert db["error"] == ("server did not answer in time" if kept else "connection lost")
    assert connections[alias].connection is None  # closed, never reused
    thawed = client.get(f"/health/{alias}/")
    assert thawed.status_code == HTTPStatus.OK  # it answers again


@pytest.mark.usefixtures("unblocked_db")
def test_sqlite_does_not_apply(client: Client, token: str) -> None:
    response = get(client, "sqlite", bearer=token)
    assert response.status_code == HTTPStatus.OK
    db = response.json()["databases"]["sqlite"]
    assert db["status"] == "ok"
    assert "not a server" in db["note"]


@pytest.mark.usefixtures("unblocked_db")
def test_the_included_urlconf_checks_every_alias(client: Client, token: str) -> None:
    url = reverse("pa_dbhealth:health")
    assert url == "/dbhealth/"
    response = client.get(url, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert set(response.json()["databases"]) == set(connections) >= {"default", "unreachable"}
    # The test site's "unreachable" alias is down, so the whole site is critical.
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE


# --- access ------------------------------------------------------------------------------


@mysql
@pytest.mark.parametrize("bearer", [None, "wrong-token-of-the-right-length", TOKEN[:-1]])
def test_anonymous_and_wrong_token_get_the_status_alone(
    client: Client, token: str, bearer: str | None
) -> None:
    response = get(client, bearer=bearer)
    assert response.status_code == HTTPStatus.OK
    assert response.json() == {"status": "ok"}


@mysql
def test_no_token_configured_means_no_token_works(client: Client, settings: Any) -> None:
    settings.PA_DBHEALTH = {}
    assert get(client, bearer="None").json() == {"status": "ok"}
    assert get(client, bearer="").json() == {"status": "ok"}


@mysql
def test_right_token_gets_the_full_body(client: Client, token: str) -> None:
    body = get(client, bearer=token).json()
    assert set(body) == {"status", "databases", "pins", "findings", "waits"}
    assert body["pins"] == []  # nothing ran here that pins a multiplexer's connection
    assert body["findings"] == []
    assert set(body["waits"]) == {
        "counters",
        "buckets",
        "beyond",
        "count",
        "sum",
        "waiting",
        "longest_wait_seconds",
    }
    assert set(body["databases"]["default"]) >= {
        "status",
        "vendor",
        "connections",
        "wait_timeout",
        "process",
    }


@mysql
def test_a_token_set_with_a_newline_is_the_token_without_it(client: Client, settings: Any) -> None:
    settings.PA_DBHEALTH = {"HEALTH_TOKEN": f"{TOKEN}\n"}  # read from a file
    assert "databases" in get(client, bearer=TOKEN).json()
    assert get(client, bearer=f"{TOKEN}x").json() == {"status": "ok"}


@mysql
def test_a_refused_registry_is_a_finding_of_the_full_body(client: Client, settings: Any) -> None:
    settings.PA_DBHEALTH = {"HEALTH_TOKEN": TOKEN, "REGISTRY_DIR": "/tmp"}
    assert get(client).json() == {"status": "ok"}  # an anonymous caller learns nothing of it
    (finding,) = get(client, bearer=TOKEN).json()["findings"]
    assert (
        finding["id"] == "pa_dbhealth.E028"
        and "/tmp is open to other users" in (finding["message"])
    )
    assert "chmod" not in finding["hint"]


@mysql
def test_staff_user_gets_the_full_body(client: Client, token: str) -> None:
    user = User.objects.create_user("someone", password="x")
    client.force_login(user)
    assert get(client).json() == {"status": "ok"}
    user.is_staff = True
    user.save()
    assert "databases" in get(client).json()


@mysql
def test_no_store(client: Client, token: str) -> None:
    for bearer in (None, token):
        assert "no-store" in get(client, bearer=bearer)["Cache-Control"]


@mysql
def test_only_get_and_head(client: Client) -> None:
    assert client.post("/health/default/").status_code == HTTPStatus.METHOD_NOT_ALLOWED
    assert client.head("/health/default/").status_code == HTTPStatus.OK
    # As a browser or a monitor meets it, with CSRF checked: still 405, not 403.
    strict = Client(enforce_csrf_checks=True)
    assert strict.post("/dbhealth/").status_code == HTTPStatus.METHOD_NOT_ALLOWED


@mysql
def test_caches_are_told_the_body_depends_on_the_token(client: Client, token: str) -> None:
    for bearer in (None, token):
        for data in ({}, {"format": "prometheus"}):
            vary = get(client, bearer=bearer, data=data)["Vary"]
            assert "Authorization" in vary and "Accept" in vary


@mysql
def test_unknown_format_is_a_400(client: Client) -> None:
    assert get(client, data={"format": "xml"}).status_code == HTTPStatus.BAD_REQUEST


# --- cost --------------------------------------------------------------------------------


@mysql
@pytest.mark.parametrize("fmt", ["json", "prometheus"])
@pytest.mark.parametrize("bearer", [None, TOKEN])
def test_the_view_leaves_no_connection_behind(
    rf: RequestFactory,
    token: str,
    settled_ids: Callable[[Callable[[list[int]], bool]], list[int]],
    account_ids: Callable[[], list[int]],
    bearer: str | None,
    fmt: str,
) -> None:
    # Called directly: the test site's hygiene middleware would close a leaked connection.
    closed_default()
    before = account_ids()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {bearer}"} if bearer else {}
    response = views.health(rf.get("/", {"format": fmt}, **headers), databases=["default"])
    assert response.status_code == HTTPStatus.OK
    assert settled_ids(lambda ids: ids == before) == before
    assert connections["default"].connection is None


@mysql
def test_an_open_request_connection_is_used_and_left_open(
    rf: RequestFactory, token: str, account_ids: Callable[[], list[int]]
) -> None:
    # Called directly, as within a request that has used the database already (the test
    # site's hygiene middleware would close the connection around a client request).
    connection = connections["default"]
    connection.ensure_connection()
    own = connection.connection.thread_id()
    request = rf.get("/", HTTP_AUTHORIZATION=f"Bearer {token}")  # no auth middleware: no .user
    response = views.health(request, databases=["default"])
    body = json.loads(response.content)
    assert body["databases"]["default"]["connections"]["total"] == 1  # no second connection
    assert connection.connection is not None
    assert connection.connection.thread_id() == own
    assert account_ids() == [own]


@mysql
def test_the_connect_timeout_does_not_leak_into_the_settings(client: Client) -> None:
    closed_default()
    shared = connections["default"].settings_dict  # the dict every thread's wrapper holds
    before = dict(shared["OPTIONS"])
    assert "connect_timeout" not in before
    get(client)
    assert connections["default"].settings_dict is shared
    assert shared["OPTIONS"] == before


# --- the status rule ---------------------------------------------------------------------


def snapshot(limit: int | None, idle: list[int], wait_timeout: int = 300) -> AccountSnapshot:
    own = AccountConnection(1, "app", "h", "app", "Query", "", 0, False, True)
    others = [
        AccountConnection(i + 2, "app", "h", "app", "Sleep", "", s, True, False)
        for i, s in enumerate(idle)
    ]
    return AccountSnapshot(limit, wait_timeout, [own, *others])


@pytest.mark.parametrize(
    ("limit", "idle", "expected"),
    [
        (3, [], health.Status.OK),
        (3, [10], health.Status.WARNING),  # one left
        (3, [10, 10], health.Status.CRITICAL),  # none left
        (10, [279], health.Status.OK),
        (10, [280], health.Status.WARNING),  # idle past the staleness limit (300 - 20)
        (None, [1, 1, 1, 1], health.Status.OK),  # no cap to run into
    ],
)
def test_status_rule(limit: int | None, idle: list[int], expected: health.Status) -> None:
    status, reasons = judge(snapshot(limit, idle), margin=20)
    assert status is expected
    assert bool(reasons) == (expected is not health.Status.OK)


# --- who holds the connections (the registry of holders) ----------------------------------


@pytest.fixture
def registry_holders(settings: Any, tmp_path: Path, holders: Holders) -> Holders:
    settings.PA_DBHEALTH = {"HEALTH_TOKEN": TOKEN, "REGISTRY_DIR": str(tmp_path / "holders")}
    return holders


@mysql
def test_the_full_body_names_each_connections_holder(
    client: Client, registry_holders: Holders, raw_connections: Any
) -> None:
    closed_default()
    mine = registry_holders.named("poller")
    (raw,) = raw_connections(1)
    db = get(client, bearer=TOKEN).json()["databases"]["default"]
    assert db["holders"]["source"] == "server"
    rows = {row["id"]: row for row in db["holders"]["connections"]}
    holder = rows[mine]["holder"]
    assert (holder["pid"], holder["thread"]) == (os.getpid(), "poller")
    assert holder["probable_leak"] and "fresh_connections" in holder["leak"]["fix"]
    assert rows[raw.thread_id()]["holder"] is None
    (own,) = [row for row in rows.values() if row["this_connection"]]
    assert own["holder"] is None


@mysql
def test_at_a_full_cap_the_full_body_names_the_holders_from_the_registry(
    client: Client, registry_holders: Holders, raw_connections: Any
) -> None:
    closed_default()
    held = {registry_holders.named("worker-a"), registry_holders.named("worker-b")}
    raw_connections(1)
    anonymous = get(client)
    assert anonymous.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert anonymous.json() == {"status": "critical"}  # nothing more without the token
    db = get(client, bearer=TOKEN).json()["databases"]["default"]
    assert db["error"] == "connection cap reached"
    view = db["holders"]
    assert view["source"] == "registry"
    assert {item["id"] for item in view["connections"]} == held
    assert {item["holder"]["thread"] for item in view["connections"]} == {"worker-a", "worker-b"}
    assert "cannot know" in view["cannot_know"]


@pytest.mark.usefixtures("unblocked_db")
@pytest.mark.parametrize("kept", [True, False], ids=["kept connection", "own connection"])
def test_a_link_gone_silent_is_503_within_the_bound(
    client: Client,
    token: str,
    server: Any,
    proxy: Proxy,
    temporary_alias: AddAlias,
    kept: bool,
) -> None:
    """A link that passes the handshake and then swallows every byte (a dying NAT, a hung
    proxy): the kernel shows nothing, only the bound ends the wait."""
    alias = temporary_alias("silent", {**settings_through(proxy, server.database_settings())})
    connections.settings[alias]["CONN_MAX_AGE"] = 60
    with override_settings(PA_DBHEALTH={"HEALTH_TOKEN": token, "HEALTH_CONNECT_TIMEOUT": 1}):
        if kept:
            connections[alias].ensure_connection()  # a request of this thread left it open
            proxy.stall()
        else:
            proxy.stall(after_handshake=True)
        started = time.monotonic()
        response = client.get(f"/health/{alias}/", HTTP_AUTHORIZATION=f"Bearer {token}")
        elapsed = time.monotonic() - started
    assert elapsed < 2 * 1 + 1.5
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    db = response.json()["databases"][alias]
    assert (db["status"], db["error"]) == ("critical", "server did not answer in time")
    assert connections[alias].connection is None  # the stuck one closed, not kept
    proxy.heal()
    assert client.get(f"/health/{alias}/").status_code == HTTPStatus.OK
