"""Concurrent workers for the connection budget: the setting, and uWSGI's options."""

from __future__ import annotations

import sys
import types

import pytest
from processes import Processes

from pa_dbhealth.core.workers import concurrent_workers, uwsgi_workers


def test_setting_wins() -> None:
    assert concurrent_workers(5) == (5, "PA_DBHEALTH['WORKERS']")
    assert concurrent_workers(5, "WORKERS") == (5, "WORKERS")


def test_unknown_outside_uwsgi() -> None:
    assert concurrent_workers(None).number is None


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({b"processes": b"4", b"threads": b"2"}, (4, 2)),
        ({"processes": "3"}, (3, 1)),
        ({b"workers": b"2", b"enable-threads": True}, (2, 1)),
        ({b"processes": [b"2", b"6"], b"threads": b"1"}, (6, 1)),
        ({}, (1, 1)),
    ],
)
def test_uwsgi_option_dict(options: dict[object, object], expected: tuple[int, int]) -> None:
    assert uwsgi_workers(options) == expected


def test_simulated_uwsgi_module(monkeypatch: pytest.MonkeyPatch) -> None:
    # The uwsgi module exists only inside a uWSGI process: stand in for its option dict.
    fake = types.ModuleType("uwsgi")
    fake.opt = {b"processes": b"4", b"threads": b"2", b"module": b"site.wsgi"}  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "uwsgi", fake)
    assert concurrent_workers(None) == (8, "uWSGI (4 processes x 2 threads)")


def test_under_a_real_uwsgi(processes: Processes) -> None:
    site = processes.uwsgi(processes=3, threads=2)
    assert site.get("/workers/") == (200, "6|uWSGI (3 processes x 2 threads)")
