"""A long-running import that pauses between batches, as a real one waits on a remote API."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import CommandParser

from demo_project.emissores.models import Emissor
from pa_dbhealth import tracker
from pa_dbhealth.management.base import LongRunningCommand


class Command(LongRunningCommand):
    help = (
        "Import emissores in batches, pausing between them. Survives pauses longer than "
        "the server's wait_timeout: connections gone stale are replaced between batches."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batches", type=int, default=3)
        parser.add_argument("--batch-size", type=int, default=10)
        parser.add_argument(
            "--pause", type=float, default=330.0, help="seconds between batches (default 330)"
        )

    def handle(
        self, *args: Any, batches: int, batch_size: int, pause: float, **options: Any
    ) -> None:
        opened = tracker.figures()["opened"]
        for batch in self.keep_fresh(range(batches)):
            start = batch * batch_size
            created = 0
            for number in range(start, start + batch_size):
                _, new = Emissor.objects.get_or_create(
                    cnpj=f"99.{number:03d}.000/0001-00", defaults={"nome": f"Importado {number}"}
                )
                created += new
            self.stdout.write(f"batch {batch + 1}/{batches}: {created} added")
            if batch + 1 < batches:
                time.sleep(pause)  # stands in for a slow remote source, between items
        reconnects = tracker.figures()["opened"] - opened
        self.stdout.write(
            self.style.SUCCESS(
                f"{Emissor.objects.count()} emissores in all; {reconnects} connection(s) opened."
            )
        )
