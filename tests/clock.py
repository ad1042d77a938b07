"""A clock that a test moves forward, for rules that only compare times.

``time.monotonic()`` and ``time.time()`` of this process read the real clock plus an offset
that ``Clock.advance(seconds)`` grows: "2.5 s later" without waiting 2.5 s. Real sleeps,
timeouts of threads and sockets, and the database server's own clock are not moved, so a
rule that needs the server to notice the time (wait_timeout dropping a connection) still
needs a real wait, or the ``pause`` fixture (conftest), which does to the server what the
pause would have done.
"""

from __future__ import annotations

import time

import pytest


class Clock:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.offset = 0.0
        real_monotonic, real_time = time.monotonic, time.time
        monkeypatch.setattr(time, "monotonic", lambda: real_monotonic() + self.offset)
        monkeypatch.setattr(time, "time", lambda: real_time() + self.offset)

    def advance(self, seconds: float) -> None:
        """Move this process's clock ``seconds`` on, at once."""
        self.offset += seconds

    def sleep(self, seconds: float) -> None:
        """``advance``, with the signature of ``time.sleep`` (for a ``wait`` argument)."""
        self.advance(seconds)
