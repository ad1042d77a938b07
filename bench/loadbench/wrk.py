"""wrk, driving one URL for a fixed time, read through ``bench/report.lua``."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

REPORT_LUA = Path(__file__).resolve().parent.parent / "report.lua"
# report.lua's line and the answers counted by status (slower: each answer goes through Lua).
STATUSES_LUA = REPORT_LUA.with_name("statuses.lua")


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    statuses: dict[int, int] = field(default_factory=dict)  # with STATUSES_LUA only
    retry_after: int = 0  # answers with a Retry-After header (STATUSES_LUA only)

    @property
    def ok_per_second(self) -> float:
        return (self.requests - self.non_2xx) / self.seconds if self.seconds else 0.0


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk is not installed: `apt-get install wrk`")
    return found


def wrk(url: str, seconds: float, clients: int, script: Path = REPORT_LUA) -> WrkResult:
    cmd = [wrk_binary(), "-t", str(min(2, clients)), "-c", str(clients)]
    cmd += ["-d", f"{max(1, round(seconds))}s", "--timeout", "30s", "-s", str(script), url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 90, check=True)
    match = re.search(r"^BENCH (.*)$", out.stdout, re.MULTILINE)
    if not match:
        raise SystemExit(f"unexpected wrk output:\n{out.stdout}{out.stderr}")
    got = _pairs(match.group(1))
    counted = re.search(r"^STATUSES (.*)$", out.stdout, re.MULTILINE)
    statuses = _pairs(counted.group(1) if counted else "")
    retry_after = statuses.pop("retry_after", 0)
    return WrkResult(
        requests=got["requests"],
        seconds=got["duration"] / 1e6,
        non_2xx=got["status"],
        socket_errors=got["connect"] + got["read"] + got["write"] + got["timeout"],
        p50_ms=got["p50"] / 1000,
        p99_ms=got["p99"] / 1000,
        p999_ms=got["p999"] / 1000,
        max_ms=got["max"] / 1000,
        statuses={int(status): count for status, count in statuses.items()},
        retry_after=retry_after,
    )


def _pairs(text: str) -> dict[str, int]:
    """``name=number ...`` as a dict."""
    return {k: int(v) for k, v in (pair.split("=") for pair in text.split())}
