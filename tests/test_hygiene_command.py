"""LongRunningCommand, and the demo's import command, against a 2 s wait_timeout."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import connections
from django.db.utils import OperationalError
from django.test import override_settings
from processes import Finished, run

from pa_dbhealth.management.base import LongRunningCommand
from pa_dbhealth.sandbox import SandboxInfo

mysql = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parent.parent


def pausing_loop(command: BaseCommand, items: Any, pause: Callable[[float], None]) -> None:
    for _ in items:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
        command.stdout.write("item done")
        pause(2.5)


class PlainCommand(BaseCommand):
    def handle(self, *args: Any, **options: Any) -> None:
        pausing_loop(self, range(2), time.sleep)  # the control waits for the real timeout


class FreshCommand(LongRunningCommand):
    pause: Callable[[float], None] = time.sleep

    def handle(self, *args: Any, **options: Any) -> None:
        pausing_loop(self, self.keep_fresh(range(2)), self.pause)


@mysql
@override_settings(PA_DBHEALTH={"TIMEOUT_MARGIN": 1})
def test_long_running_command_survives_pauses_past_the_timeout(
    idle_timeout: Callable[[int], None], pause: Callable[[float], None]
) -> None:
    idle_timeout(2)
    with pytest.raises(OperationalError):  # control: Django's BaseCommand
        call_command(PlainCommand(stdout=StringIO()))
    connections["default"].close()
    out = StringIO()
    fresh = FreshCommand(stdout=out)
    fresh.pause = pause  # idle past the limit, dropped by the server: without the wait
    call_command(fresh)
    assert out.getvalue().count("item done") == 2


@mysql
def test_the_demo_import_survives_a_wait_timeout_shorter_than_its_pauses(
    server: SandboxInfo, idle_timeout: Callable[[int], None]
) -> None:
    env = {**os.environ, **server.env(), "DJANGO_SETTINGS_MODULE": "demo_project.settings"}
    env.pop("PYTHONPATH", None)

    def manage(*args: str) -> Finished:
        return run([sys.executable, "manage.py", *args], cwd=ROOT, env=env)

    migrated = manage("migrate", "--no-input", "-v0")
    assert migrated.returncode == 0, migrated.err
    idle_timeout(2)
    imported = manage("import_emissores", "--batches", "3", "--batch-size", "2", "--pause", "2.5")
    assert imported.returncode == 0, imported.err
    assert "batch 3/3" in imported.out
    # Each pause outlived the connection: one connection per batch, none met dead.
    assert "3 connection(s) opened" in imported.out, imported.out
