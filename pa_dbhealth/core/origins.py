"""Where a connection was asked for: the first frame of the application's own code, and the
stack that led there, skipping the machinery (the framework's packages and pa_dbhealth).

Every face's tracker uses one :class:`Origins`, naming its framework's packages.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import threading
import traceback
from functools import cached_property
from types import FrameType

# Machinery of the standard library between the code and the connect: a thread's run, a
# ``with`` block.
_SKIPPED_FILES = frozenset(
    os.path.abspath(path) for path in (threading.__file__, contextlib.__file__) if path
)


class Origins:
    """Frame lookups that skip the directories of ``packages`` (those installed) and of
    pa_dbhealth itself."""

    def __init__(self, *packages: str) -> None:
        self.packages = ("pa_dbhealth", *packages)

    @cached_property
    def _skipped_dirs(self) -> tuple[str, ...]:
        dirs = []
        for name in self.packages:
            spec = importlib.util.find_spec(name)
            if spec is not None and spec.origin:
                dirs.append(os.path.dirname(os.path.abspath(spec.origin)) + os.sep)
        return tuple(dirs)

    def skipped(self, filename: str) -> bool:
        return (
            filename.startswith(self._skipped_dirs)
            or filename in _SKIPPED_FILES
            or filename.startswith("<")
        )

    def where(self, frame: FrameType | None) -> tuple[str | None, bool]:
        """``"file:line in function"`` of the first frame from ``frame`` outwards that is not
        machinery (None if all are), and whether a module is being imported."""
        caller = None
        while frame is not None:
            filename = frame.f_code.co_filename
            if filename.startswith("<frozen importlib"):
                return caller, True
            if caller is None and not self.skipped(filename):
                caller = f"{filename}:{frame.f_lineno} in {frame.f_code.co_name}"
            frame = frame.f_back
        return caller, False

    def stack(self, frame: FrameType | None, limit: int = 20) -> str:
        """The formatted stack that led to ``frame``, ending at the code that asked (the
        machinery's innermost frames dropped), at most ``limit`` frames."""
        frames = traceback.extract_stack(frame)
        while len(frames) > 1 and self.skipped(frames[-1].filename):
            frames.pop()
        return "".join(traceback.format_list(frames[-limit:])).rstrip()
