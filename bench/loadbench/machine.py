"""The machine and the versions a run was made with, to print beside its figures."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
from importlib.metadata import version
from pathlib import Path

from loadbench.servers import uwsgi_binary
from pa_dbhealth import sandbox


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def load_average() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def describe(info: sandbox.SandboxInfo) -> str:
    import django

    uwsgi = subprocess.run(
        [uwsgi_binary(), "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    packages = ", ".join(
        f"{name} {version(name)}" for name in ("Flask", "Flask-SQLAlchemy", "SQLAlchemy")
    )
    return (
        f"{cpu_model()}, {os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable); "
        f"{platform.system()} {platform.release()}; Python {platform.python_version()}, "
        f"Django {django.get_version()}, {packages}, uWSGI {uwsgi}, "
        f"{info.flavour} {info.version}"
    )
