"""Wrong health tokens (``pa_dbhealth.core.sign_in_limit``): they cost the site no database
connection, and an address that sends too many waits, across the processes of the host."""

from __future__ import annotations

import subprocess
import sys
import time
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
from conftest import connections_accepted
from django.test import Client
from django.urls import path
from test_page import PAGE, TOKEN, csrf_of, text
from test_page import urlpatterns as page_urls

from pa_dbhealth import views
from pa_dbhealth.core import sign_in_limit
from pa_dbhealth.core.sign_in_limit import LIMIT, WINDOW, SignInAttempts

mysql = pytest.mark.django_db(transaction=True)
urlpatterns = [*page_urls, path("health/", views.health, {"databases": ["default"]})]
pytestmark = pytest.mark.urls(__name__)
WRONG = "a-wrong-token-of-some-length"


@pytest.fixture
def where(settings: Any, tmp_path: Path) -> Path:
    settings.PA_DBHEALTH = {"HEALTH_TOKEN": TOKEN, "REGISTRY_DIR": str(tmp_path / "holders")}
    return tmp_path / "holders"


def wrong_tokens(
    client: Client, count: int, given: str = "a-wrong-token-of-some-length"
) -> list[Any]:
    csrf = csrf_of(client.get(PAGE).content.decode())
    data = {"csrfmiddlewaretoken": csrf, "action": "login", "token": given}
    return [client.post(PAGE, data) for _ in range(count)]


@mysql
def test_wrong_tokens_cost_no_connection_then_wait_with_retry_after(
    where: Path, admin: Any
) -> None:
    client = Client(enforce_csrf_checks=True)
    client.get(PAGE)  # the status anonymous views share, looked up once
    before = connections_accepted(admin)
    refused = wrong_tokens(client, LIMIT)
    assert connections_accepted(admin) == before  # the GET for the form shared the status too
    assert {r.status_code for r in refused} == {HTTPStatus.FORBIDDEN}
    assert all("Wrong token." in text(r) for r in refused)
    (waiting, right) = wrong_tokens(client, 1) + wrong_tokens(client, 1, given=TOKEN)
    for response in (waiting, right):  # while it waits, not even the right token is compared
        assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
        assert 0 < int(response["Retry-After"]) <= WINDOW
        assert f"Too many wrong tokens: try again in {response['Retry-After']} s." in text(response)
    assert TOKEN not in "".join(n for n in (p.name for p in where.iterdir()))


@mysql
def test_the_count_holds_across_the_processes_of_the_host(where: Path) -> None:
    code = (
        "import sys; from pathlib import Path\n"
        "from pa_dbhealth.core.sign_in_limit import SignInAttempts, LIMIT\n"
        "for _ in range(LIMIT): SignInAttempts(Path(sys.argv[1])).failed('127.0.0.1')\n"
    )
    subprocess.run([sys.executable, "-c", code, str(where)], check=True, timeout=60)
    (response,) = wrong_tokens(Client(enforce_csrf_checks=True), 1, given=TOKEN)
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert SignInAttempts(where).wait("127.0.0.2") is None  # another address may try


@mysql
def test_the_health_views_bearer_is_counted_the_same_way(where: Path) -> None:
    client = Client()
    for _ in range(LIMIT):
        response = client.get("/health/", HTTP_AUTHORIZATION=f"Bearer {WRONG}")
        assert response.json() == {"status": "ok"}
    response = client.get("/health/", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert 0 < int(response["Retry-After"]) <= WINDOW
    assert client.get("/health/").json() == {"status": "ok"}  # anonymous: never limited


def test_a_right_token_clears_the_count_and_old_ones_expire(tmp_path: Path) -> None:
    attempts = SignInAttempts(tmp_path / "holders")
    for _ in range(LIMIT - 1):
        attempts.failed("198.51.100.7")
    attempts.succeeded("198.51.100.7")
    for _ in range(LIMIT):
        attempts.failed("198.51.100.7")
    assert attempts.wait("198.51.100.7") is not None
    assert attempts.wait("198.51.100.7", now=time.time() + WINDOW + 1) is None
    names = [p.name for p in (tmp_path / "holders").iterdir()]
    assert len(names) == 1 and names[0].startswith(sign_in_limit.PREFIX)
    assert "198.51" not in names[0]  # the address is not kept


def test_without_a_registry_each_process_counts_for_itself() -> None:
    attempts = SignInAttempts(None)
    for _ in range(LIMIT):
        attempts.failed("192.0.2.1")
    assert attempts.wait("192.0.2.1") is not None
    attempts.forget()
    assert attempts.wait("192.0.2.1") is None
