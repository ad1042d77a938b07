"""The wait figures' files: one per process, beside the registry of holders, and their sum.

``<registry>-metrics/<host>-<pid>.json`` holds what :func:`pa_dbhealth.core.waits.figures`
returns, with who wrote it and the account lines it knows::

    {"format": 1, "host": "web1", "pid": 4242, "started": 8412345, "lines": [["h:3306", "app"]],
     "counters": {"refusals": {"cap": 3}, "giveups": {"": 1}}, "buckets": [[0.05, 2]],
     "beyond": 0, "count": 2, "sum": 0.07, "waiting_outside_line": 0,
     "oldest_wait_since": null}

Files are private (:mod:`pa_dbhealth.core.private_files`) and read without trust: a file
that breaks a rule (a negative count, a label that is not a short word) is skipped whole.
``retired.json`` holds the counters of processes that have exited, so a sum never goes down.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

FORMAT = 1
SUFFIX = "-metrics"
RETIRED = "retired.json"
MAX_BYTES = 64 * 1024
_LABEL = re.compile(r"[a-z_]{0,40}\Z")


class Malformed(ValueError):
    pass


def directory_beside(registry: Path | None) -> Path | None:
    """Where the figures go: beside the registry's directory (None: turned off)."""
    return None if registry is None else registry.with_name(registry.name + SUFFIX)


def _whole(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**62:
        raise Malformed(str(value))
    return value


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Malformed(str(value))
    if not (math.isfinite(value) and 0 <= value < 1e12):
        raise Malformed(str(value))
    return float(value)


def _label(value: Any) -> str:
    if not isinstance(value, str) or not _LABEL.match(value):
        raise Malformed(str(value))
    return value


def _counters(value: Any) -> dict[str, dict[str, int]]:
    if not isinstance(value, dict) or len(value) > 20:
        raise Malformed("counters")
    found: dict[str, dict[str, int]] = {}
    for family, labels in value.items():
        if not isinstance(labels, dict) or len(labels) > 40:
            raise Malformed(family)
        found[_label(family)] = {_label(k): _whole(n) for k, n in labels.items()}
    return found


def _buckets(value: Any) -> list[list[Any]]:
    if not isinstance(value, list) or len(value) > 40:
        raise Malformed("buckets")
    pairs = []
    for pair in value:
        if not isinstance(pair, list) or len(pair) != 2:
            raise Malformed("bucket")
        pairs.append([_seconds(pair[0]), _whole(pair[1])])
    return pairs


def _lines(value: Any) -> list[tuple[str, str]]:
    if not isinstance(value, list) or len(value) > 40:
        raise Malformed("lines")
    found = []
    for pair in value:
        if not (
            isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)
        ):
            raise Malformed("line")
        if max(len(pair[0]), len(pair[1])) > 200:
            raise Malformed("line")
        found.append((pair[0], pair[1]))
    return found


def parse(data: bytes) -> dict[str, Any] | None:
    """A file's figures, checked, or None when anything about it is wrong."""
    try:
        raw = json.loads(data.decode("utf-8"))
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            return None
        oldest = raw.get("oldest_wait_since")
        started = raw.get("started")
        return {
            "pid": _whole(raw.get("pid")),
            "started": None if started is None else _whole(started),
            "lines": _lines(raw.get("lines", [])),
            "counters": _counters(raw.get("counters", {})),
            "buckets": _buckets(raw.get("buckets", [])),
            "beyond": _whole(raw.get("beyond", 0)),
            "count": _whole(raw.get("count", 0)),
            "sum": _seconds(raw.get("sum", 0)),
            "waiting_outside_line": _whole(raw.get("waiting_outside_line", 0)),
            "oldest_wait_since": None if oldest is None else _seconds(oldest),
        }
    except (ValueError, RecursionError, UnicodeDecodeError, AttributeError):
        return None


def empty() -> dict[str, Any]:
    return {
        "pid": 0,
        "started": None,
        "lines": [],
        "counters": {},
        "buckets": [],
        "beyond": 0,
        "count": 0,
        "sum": 0.0,
    }


def add_counts(total: dict[str, Any], more: dict[str, Any]) -> None:
    """Add the counters and the histogram of ``more`` into ``total`` (gauges left alone)."""
    for family, labels in more["counters"].items():
        into = total["counters"].setdefault(family, {})
        for label, n in labels.items():
            into[label] = into.get(label, 0) + n
    merged = dict((float(b), n) for b, n in total["buckets"])
    for bound, n in more["buckets"]:
        merged[float(bound)] = merged.get(float(bound), 0) + n
    total["buckets"] = [[bound, merged[bound]] for bound in sorted(merged)]
    for key in ("beyond", "count", "sum"):
        total[key] += more[key]


def encode(data: dict[str, Any]) -> bytes:
    return json.dumps({"format": FORMAT, **data}, separators=(",", ":")).encode()
