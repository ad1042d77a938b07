"""Base classes for management commands: pa_dbhealth's own report commands, and commands
that run for minutes or hours."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from django.core.management.base import BaseCommand, CommandError

from pa_dbhealth.core.cli_steps import CommandFailed
from pa_dbhealth.hygiene import fresh_connections, keep_fresh

T = TypeVar("T")


class LongRunningCommand(BaseCommand):
    """A ``BaseCommand`` whose run (``handle`` and all) happens inside
    ``fresh_connections``, with ``self.keep_fresh(items)`` for its loops.

    Outside the request cycle nothing closes old connections, so a command that pauses
    longer than the server's idle timeout meets ``(2006, 'MySQL server has gone away')``; a
    subclass of this one does not, as long as its pauses fall between loop items.
    """

    def execute(self, *args: Any, **options: Any) -> str | None:
        with fresh_connections():
            result: str | None = super().execute(*args, **options)
        return result

    def keep_fresh(self, iterable: Iterable[T], every: float | None = None) -> Iterator[T]:
        """``pa_dbhealth.keep_fresh``: stale connections are closed before each item."""
        return keep_fresh(iterable, every)


class ReportCommand(BaseCommand):
    """``dbcheck`` and ``dbconnections``: steps and output are every face's
    (``core.cli_steps``); this says them in Django's terms: text painted with
    ``self.style``, a :class:`CommandFailed` as a ``CommandError`` with its exit code."""

    requires_system_checks: list[str] = []

    def write(self, text: str, style: str | None) -> None:
        self.stdout.write(getattr(self.style, style)(text) if style else text)
        self.stdout.flush()

    @contextlib.contextmanager
    def exit_codes(self) -> Iterator[None]:
        try:
            yield
        except CommandFailed as exc:
            raise CommandError(str(exc), returncode=exc.code) from None
