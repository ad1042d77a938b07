"""What PARK keeps is in the registry of holders: ``dbconnections`` names the process that
keeps a connection between requests, and why, not "not tracked" (a console's words). Against
the real capped server (cap 3), in this process and in uWSGI workers."""

from __future__ import annotations

import gc
import io
import json
import os
import time
from typing import Any

import pytest
from django.core.management import call_command
from test_parking import ALIAS, in_line, request, until
from test_parking_attack import site_line, site_settings

from pa_dbhealth import holders
from pa_dbhealth.backends.mysql.base import DatabaseWrapper
from pa_dbhealth.core import kept, parking, registry, releaser
from pa_dbhealth.core.line import Line

__all__ = ["in_line", "site_line"]  # the fixtures

pytestmark = pytest.mark.usefixtures("unblocked_db")


def rows(output: str) -> list[dict[str, Any]]:
    """The account's connections as ``dbconnections --format json`` lists them, its own
    connection left out."""
    found = json.loads(output)["databases"]["default"]["connections"]
    return [row for row in found if not row["this_connection"]]


def listed_ids() -> set[int | None]:
    """Ids of the connections this process's registry file lists as kept."""
    found = registry.read(holders.directory(), prune=False)
    return {
        held.id
        for process in found.processes
        if process.pid == os.getpid()
        for held in process.connections
        if held.thread == registry.KEPT_THREAD
    }


def test_a_parked_connection_is_named_then_let_go(in_line: tuple[dict[str, Any], Line]) -> None:
    settings_dict, _ = in_line
    parked_id = request(settings_dict)
    until(lambda: listed_ids() == {parked_id}, kept.LIST_EVERY + 2.0)
    out = io.StringIO()
    call_command("dbconnections", "--format", "json", stdout=out)
    (row,) = [row for row in rows(out.getvalue()) if row["id"] == parked_id]
    assert row["holder"]["pid"] == os.getpid()
    assert row["holder"]["thread"] == registry.KEPT_THREAD
    assert row["holder"]["origin"].endswith(" in request")  # where it was first opened
    text = io.StringIO()
    call_command("dbconnections", stdout=text)
    assert "given up as soon as a connect of the site waits" in text.getvalue()
    for _ in range(5):  # taken and parked again by later requests: one entry all along
        assert request(settings_dict) == parked_id
    time.sleep(kept.LIST_EVERY + releaser.BYSTANDER_INTERVAL)
    assert listed_ids() == {parked_id}
    parking.LOT.release_due(everything=True)  # closed, its token given back
    until(lambda: not listed_ids(), releaser.LINGER + 2.0)


def test_kept_connections_of_uwsgi_workers_are_named(
    site_line: tuple[dict[str, Any], Line], processes: Any
) -> None:
    """Requests to 2 workers x 2 threads, then a look from another process: every one of
    the account's connections is named by the worker that keeps it. More requests, one
    after another, take and park the same connections: no worker rewrites its file."""
    settings_dict, _ = site_line
    settings = site_settings(settings_dict)
    site = processes.uwsgi(processes=2, threads=2, settings=settings)

    def requests(count: int) -> dict[int, float]:
        for n in range(count):
            status, body = site.get(f"/attack/read/{n}/")
            assert status == 200, body
        time.sleep(kept.LIST_EVERY + releaser.BYSTANDER_INTERVAL + 0.5)
        found = registry.read(registry.directory(None), prune=False)
        return {process.pid: process.written_at for process in found.processes}

    written = requests(12)
    looked = processes.manage("dbconnections", "--format", "json", settings=settings)
    assert looked.returncode == 0, looked.err
    found = rows(looked.out)
    assert found, "nothing kept: the test tested nothing"
    for row in found:
        assert row["holder"] is not None, row
        assert row["holder"]["thread"] == registry.KEPT_THREAD
        assert row["holder"]["pid"] in written
        assert row["holder"]["pid"] != site.pid  # a worker, not the master
    workers = {row["holder"]["pid"] for row in found}
    again = requests(12)
    assert {pid: again[pid] for pid in workers} == {pid: written[pid] for pid in workers}
    site.stop()


def test_a_kept_connection_its_owner_drops_still_gives_its_token_back(
    in_line: tuple[dict[str, Any], Line],
) -> None:
    """The list holds no connection: one that was kept, then taken by a request whose
    wrapper is dropped without a close (a thread that died), is garbage-collected and its
    token goes back, as without PARK; the list lets it go."""
    settings_dict, line = in_line
    parked_id = request(settings_dict)
    until(lambda: listed_ids() == {parked_id}, kept.LIST_EVERY + 2.0)
    wrapper = DatabaseWrapper(settings_dict, alias=ALIAS)
    wrapper.ensure_connection()  # takes the kept connection: no connect
    assert parking.LOT.count() == 0
    assert line.free == 2
    del wrapper
    gc.collect()
    until(lambda: line.free == 3)
    request(settings_dict)  # parks a new one: the releaser runs and writes the list again
    until(lambda: parked_id not in listed_ids(), kept.LIST_EVERY + 2.0)
