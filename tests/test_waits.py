"""Waits you can graph: the health view's wait figures, host-wide, from real waiters.

Two processes wait at a cap held by outsiders (plain MySQLdb connections); a uWSGI worker
answers the scrape (with its token), the test reads it from its own process. The figures
each test measures are printed (``pytest -s`` shows them).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connections
from outsiders import retrying_settings
from processes import Processes, Running, Site

from pa_dbhealth import hygiene
from pa_dbhealth.core import line as lines
from pa_dbhealth.core import prometheus, waits, waits_files, waits_host
from pa_dbhealth.core.health import Report
from pa_dbhealth.core.registry.files import file_name
from pa_dbhealth.core.registry.process import this_host
from pa_dbhealth.holders import server_of

pytestmark = pytest.mark.usefixtures("unblocked_db")

TOKEN = "a-long-enough-token-for-the-waits-test"
BUDGET = 3.0
WAITER = (
    "import django; django.setup()\n"
    "from django.db import connection\n"
    "print('connecting', flush=True)\n"
    "try:\n    connection.ensure_connection()\n"
    "except Exception as exc:\n    print('gave up', exc.args[0], flush=True)\n"
)


@pytest.fixture
def site_settings(server: Any, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The retrying backend at a fresh line, a registry of the test's own, the token."""
    settings_dict = retrying_settings(server)
    where = server_of(settings_dict, "mysql")
    lines.forget(*where)
    yield {
        "DATABASES": {"default": {**settings_dict, "TEST": {}}},
        "PA_DBHEALTH": {
            "CONNECT_RETRY": BUDGET,
            "HEALTH_TOKEN": TOKEN,
            "REGISTRY_DIR": str(tmp_path / "holders"),
        },
    }
    lines.forget(*where)


def scrape(site: Site) -> dict[str, float]:
    """The Prometheus samples of the health view, by ``name{labels}``."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    status, body = site.get("/dbhealth/?format=prometheus", headers=headers)
    assert status == 200, body
    found = {}
    for text in body.splitlines():
        if text and not text.startswith("#"):
            name, _, value = text.rpartition(" ")
            found[name] = float(value)
    return found


def waiter(processes: Processes, settings: dict[str, Any]) -> Running:
    proc = processes.spawn([sys.executable, "-c", WAITER], env=processes.env(settings))
    proc.wait_for(lambda out: "connecting" in out, 30)
    return proc


def test_waiters_in_two_processes_are_seen_waiting_then_counted(
    site_settings: dict[str, Any], processes: Processes, raw_connections: Any
) -> None:
    site = processes.uwsgi(processes=1, settings=site_settings)
    before = scrape(site)
    raw_connections(3)  # outsiders hold the whole cap
    waiters = [waiter(processes, site_settings) for _ in range(2)]
    seen: dict[str, float] = {}
    deadline = time.monotonic() + BUDGET
    while time.monotonic() < deadline and seen.get("pa_dbhealth_connects_waiting", 0) < 2:
        seen = scrape(site)
        time.sleep(0.1)
    longest = seen["pa_dbhealth_connect_longest_wait_seconds"]
    print(f"\nwhile waiting: {seen['pa_dbhealth_connects_waiting']:.0f} waiting, longest {longest}")
    assert seen["pa_dbhealth_connects_waiting"] == 2
    for proc in waiters:
        proc.wait_for(lambda out: "gave up 1226" in out, BUDGET + 10)
        proc.proc.wait(10)
    after = scrape(site)

    def grew(name: str) -> float:
        return after[name] - before.get(name, 0)

    count = grew("pa_dbhealth_connect_wait_seconds_count")
    print(f"after: {count:.0f} waits, {grew('pa_dbhealth_connect_wait_seconds_sum'):.2f} s")
    assert after["pa_dbhealth_connects_waiting"] == 0
    assert after["pa_dbhealth_connect_longest_wait_seconds"] == 0
    assert count == 2
    assert grew('pa_dbhealth_connect_wait_seconds_bucket{le="2.5"}') == 0
    assert grew('pa_dbhealth_connect_wait_seconds_bucket{le="5.0"}') == 2
    assert grew("pa_dbhealth_connect_wait_seconds_sum") >= 2 * (BUDGET - 0.5)
    assert grew("pa_dbhealth_connect_wait_giveups_total") == 2
    assert grew('pa_dbhealth_connect_refusals_total{kind="cap"}') >= 4  # a first try, a last
    assert grew('pa_dbhealth_connect_refusals_total{kind="quota"}') == 0
    # The waiters have exited: their figures live on in the retired total, not lower.
    again = scrape(site)
    for name in (
        "pa_dbhealth_connect_wait_seconds_count",
        "pa_dbhealth_connect_wait_giveups_total",
    ):
        assert again[name] == after[name]
    metrics = Path(site_settings["PA_DBHEALTH"]["REGISTRY_DIR"] + waits_files.SUFFIX)
    retired = json.loads((metrics / waits_files.RETIRED).read_text())
    assert retired["counters"]["giveups"][""] == 2
    assert not any(str(proc.pid) in name for proc in waiters for name in _names(metrics))


def _names(folder: Path) -> list[str]:
    return [path.name for path in folder.iterdir()]


def test_a_stale_close_is_counted_by_its_reason(
    admin: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PA_DBHEALTH_REGISTRY_DIR", str(tmp_path / "holders"))
    connection = connections["default"]
    connection.ensure_connection()
    admin.execute("KILL %s", [connection.connection.thread_id()])
    time.sleep(0.2)  # the server closes its end
    before = waits_host.host_figures(None)["counters"].get(waits.STALE, {}).get("dead", 0)
    closed = hygiene.refresh_connections()
    text = prometheus.render(Report([]), full=True, waits=waits_host.host_figures(None))
    print(f"\nclosed {closed}")
    assert closed == [
        ("default", "the server closed it (its socket shows the end of the connection)")
    ]
    assert f'pa_dbhealth_stale_closes_total{{reason="dead"}} {before + 1}' in text
    assert 'pa_dbhealth_stale_closes_total{reason="idle"}' in text  # every reason is shown


def test_a_dead_process_figures_fold_into_the_retired_total(tmp_path: Path) -> None:
    registry = tmp_path / "holders"
    metrics = waits_files.directory_beside(registry)
    assert metrics is not None
    metrics.mkdir(mode=0o700)
    gone = {**waits_files.empty(), "host": this_host(), "pid": 999_999, "started": 1}
    gone.update(counters={"giveups": {"": 3}}, buckets=[[0.5, 3]], count=3, sum=1.2)

    (metrics / file_name(this_host(), 999_999)).write_bytes(waits_files.encode(gone))
    (metrics / file_name(this_host(), 999_999)).chmod(0o600)
    first = waits_host.host_figures(str(registry))
    second = waits_host.host_figures(str(registry))
    print(f"\nretired then: {first['counters'].get('giveups')}, {first['count']} waits")
    assert first["counters"]["giveups"][""] >= 3
    assert second["counters"]["giveups"] == first["counters"]["giveups"]
    assert second["count"] == first["count"] >= 3
    assert file_name(this_host(), 999_999) not in _names(metrics)
    hostile = metrics / file_name(this_host(), 999_998)
    hostile.write_text('{"format": 1, "pid": 999998, "counters": {"giveups": {"": -5}}}')
    assert waits_host.host_figures(str(registry))["counters"] == second["counters"]
