"""A parked connection passed straight to this process's thread at the head of the line.

When a connect of the host waits in the account's line, a parked connection
(:mod:`pa_dbhealth.core.parking`) is given up: closed, its token given back, and the head of
the line connects anew. When that head is a thread of the same process, closing and
connecting again is wasted: the connection is put in the head's box here instead, and
then its token is given back. The head is the only connect of the host blocked on the
line's tokens, and the kernel gives a token back to the one blocked on it, so the head
wakes with the token and finds the connection in its box (:mod:`pa_dbhealth.core.in_line`).
Fairness across processes is the line's: nothing is passed to a thread that is not next.

A box holds one connection. The head takes it only if it was opened as the head would open
one, and the server still has it; otherwise it is closed. What is passed after the head
connected by itself is closed when it leaves the head.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from pa_dbhealth.core.liveness import close_quietly

_EMPTY = None


@dataclass(frozen=True)
class Passed:
    """A connection on its way from the lot to the head of its line."""

    raw: Any  # the driver's connection, open, with no token of its own any more
    key: Hashable  # the face's key of the database (the alias)
    opened_with: Any  # what it was opened with


class Heads:
    """This process's threads at the head of a line (by the line's key), and their boxes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._boxes: dict[int, Passed | None] = {}
        self.passed = 0  # connections passed (figures, tests)

    def stand(self, line_key: int) -> None:
        """The calling thread is now the head of ``line_key`` and takes what is passed."""
        with self._lock:
            self._boxes[line_key] = _EMPTY

    def deposit(self, line_key: int, passed: Passed) -> bool:
        """Put ``passed`` in the box of this process's head of ``line_key``; False when
        no thread of this process is the head, or its box is full. The caller gives the
        connection's token back after a True, and keeps the connection after a False."""
        with self._lock:
            if line_key not in self._boxes or self._boxes[line_key] is not _EMPTY:
                return False
            self._boxes[line_key] = passed
            self.passed += 1
            return True

    def collect(self, line_key: int) -> Passed | None:
        """What was passed to the head of ``line_key``, emptying its box."""
        with self._lock:
            found = self._boxes.get(line_key)
            if line_key in self._boxes:
                self._boxes[line_key] = _EMPTY
            return found

    def leave(self, line_key: int) -> None:
        """The head of ``line_key`` leaves: what is still in its box is closed."""
        with self._lock:
            left = self._boxes.pop(line_key, None)
        if left is not None:
            close_quietly(left.raw)

    def forget_inherited(self) -> None:
        """In a forked child: the parent's heads are not this process's threads; what was
        passed to them stays referenced, never used or closed (as the lot's)."""
        self._lock = threading.Lock()
        _inherited.extend(passed for passed in self._boxes.values() if passed is not None)
        self._boxes = {}


_inherited: list[Passed] = []
HEADS = Heads()

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=HEADS.forget_inherited)
