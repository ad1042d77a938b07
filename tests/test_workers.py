"""Concurrent workers for the connection budget: the setting, and uWSGI's options."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import types
import urllib.request
from pathlib import Path

import pytest

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


APP = """
from pa_dbhealth.core.workers import concurrent_workers


def application(environ, start_response):
    workers = concurrent_workers(None)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{workers.number}|{workers.source}".encode()]
"""


def test_under_a_real_uwsgi(tmp_path: Path) -> None:
    # uWSGI from PyPI, next to this Python (Debian's uwsgi-core lacks the Python plugin).
    binary = str(Path(sys.executable).parent / "uwsgi")
    if not Path(binary).exists():
        pytest.skip("uWSGI is not installed (pip install uwsgi)")
    (tmp_path / "probe.py").write_text(APP)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = tmp_path / "uwsgi.log"
    proc = subprocess.Popen(
        [
            binary,
            "--http-socket",
            f"127.0.0.1:{port}",
            "--processes",
            "3",
            "--threads",
            "2",
            "--master",
            "--chdir",
            str(tmp_path),
            "--wsgi-file",
            "probe.py",
            "--need-app",
            "--die-on-term",
            "--logto",
            str(log),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                    body = response.read().decode()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(log.read_text()[-2000:]) from None
                time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGINT)  # uWSGI's immediate shutdown (SIGTERM waits for workers)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert body == "6|uWSGI (3 processes x 2 threads)"
