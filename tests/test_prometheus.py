"""The Prometheus answer parses with prometheus_client and says what the server says."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import pytest
from conftest import wait_until_settled
from django.db import connections
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from pa_dbhealth import health
from pa_dbhealth.core import prometheus

mysql = pytest.mark.django_db(transaction=True)
TOKEN = "a-health-token-for-the-tests"
# What Prometheus 2.x/3.x sends when it scrapes.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


@pytest.fixture
def token(settings: Any) -> str:
    settings.PA_DBHEALTH = {"HEALTH_TOKEN": TOKEN}
    return TOKEN


def scrape(client: Client, alias: str = "default", *, bearer: str | None = None) -> Any:
    extra: dict[str, Any] = {"HTTP_AUTHORIZATION": f"Bearer {bearer}"} if bearer else {}
    return client.get(f"/health/{alias}/", {"format": "prometheus"}, **extra)


def parse(text: str) -> dict[str, Any]:
    """Family name -> (type, {(sample name, sorted labels): value})."""
    return {
        family.name: (
            family.type,
            {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples},
        )
        for family in text_string_to_metric_families(text)
    }


@mysql
def test_full_metrics_match_the_server(
    client: Client, token: str, raw_connections: Any, admin: Any
) -> None:
    connections["default"].close()
    wait_until_settled(admin)  # the closed connection no longer counts as sleeping
    raw_connections(1)
    response = scrape(client, bearer=token)
    assert response.status_code == HTTPStatus.OK
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "no-store" in response["Cache-Control"]
    text = response.content.decode()
    assert "# HELP pa_dbhealth_up " in text and "# TYPE pa_dbhealth_up gauge" in text
    families = parse(text)
    db = (("database", "default"),)
    assert families["pa_dbhealth_up"] == ("gauge", {("pa_dbhealth_up", db): 1})
    assert families["pa_dbhealth_connections"] == (
        "gauge",
        {
            ("pa_dbhealth_connections", (("database", "default"), ("state", "active"))): 1,
            ("pa_dbhealth_connections", (("database", "default"), ("state", "sleeping"))): 1,
        },
    )
    assert families["pa_dbhealth_connection_limit"][1] == {("pa_dbhealth_connection_limit", db): 3}
    assert families["pa_dbhealth_wait_timeout_seconds"][1] == {
        ("pa_dbhealth_wait_timeout_seconds", db): 300
    }
    assert families["pa_dbhealth_longest_idle_seconds"][0] == "gauge"
    # The tracker's figures: counters (their family name loses "_total") and one gauge.
    for name in (
        "pa_dbhealth_connections_opened",
        "pa_dbhealth_connections_closed",
        "pa_dbhealth_connection_leaks",
        "pa_dbhealth_connect_retries",
        "pa_dbhealth_connect_giveups",
        "pa_dbhealth_connect_handoffs",
        "pa_dbhealth_probes_refused",
    ):
        kind, samples = families[name]
        assert kind == "counter"
        assert list(samples) == [(f"{name}_total", ())]
    assert (
        families["pa_dbhealth_connections_opened"][1][("pa_dbhealth_connections_opened_total", ())]
        >= 1
    )  # the probe's own connection at least
    assert families["pa_dbhealth_process_open_connections"][0] == "gauge"


@mysql
@pytest.mark.parametrize("bearer", [None, "wrong-token-of-the-right-length"])
def test_anonymous_gets_up_only(client: Client, token: str, bearer: str | None) -> None:
    response = scrape(client, bearer=bearer)
    assert response.status_code == HTTPStatus.OK
    families = parse(response.content.decode())
    assert list(families) == ["pa_dbhealth_up"]
    assert families["pa_dbhealth_up"][1] == {("pa_dbhealth_up", (("database", "default"),)): 1}


@mysql
def test_the_accept_header_of_a_scraper_selects_prometheus(client: Client, token: str) -> None:
    scraped = client.get("/health/default/", HTTP_ACCEPT=PROMETHEUS_ACCEPT)
    assert scraped["Content-Type"].startswith("text/plain")
    assert "pa_dbhealth_up" in parse(scraped.content.decode())
    browser = client.get("/health/default/", HTTP_ACCEPT="text/html,*/*;q=0.8")
    assert browser.json() == {"status": "ok"}
    explicit = client.get("/health/default/", {"format": "json"}, HTTP_ACCEPT=PROMETHEUS_ACCEPT)
    assert explicit.json() == {"status": "ok"}


@pytest.mark.usefixtures("unblocked_db")
def test_a_down_database_is_up_0_with_http_200(client: Client, token: str) -> None:
    response = scrape(client, "unreachable", bearer=token)
    assert response.status_code == HTTPStatus.OK
    families = parse(response.content.decode())
    assert families["pa_dbhealth_up"][1] == {("pa_dbhealth_up", (("database", "unreachable"),)): 0}
    assert families["pa_dbhealth_connections"][1] == {}  # nothing known, nothing made up


def test_label_values_are_escaped() -> None:
    alias = 'we\\ird "alias"\nname'
    report = health.Report([health.DatabaseHealth(alias, "mysql", health.Status.OK)])
    families = parse(prometheus.render(report, full=False))
    assert families["pa_dbhealth_up"][1] == {("pa_dbhealth_up", (("database", alias),)): 1}
