from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from demo_project.emissores.models import Emissor


class Command(BaseCommand):
    help = "Add sample emissores to the demo database (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--count", type=int, default=5)

    def handle(self, *args: Any, count: int, **options: Any) -> None:
        created = 0
        for number in range(1, count + 1):
            _, new = Emissor.objects.get_or_create(
                cnpj=f"00.000.000/0001-{number:02d}", defaults={"nome": f"Emissor {number}"}
            )
            created += new
        self.stdout.write(
            self.style.SUCCESS(f"{created} emissores added, {Emissor.objects.count()} in all.")
        )
