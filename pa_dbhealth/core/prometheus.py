"""The health report in Prometheus's text exposition format (version 0.0.4).

Written by hand, so pa_dbhealth does not depend on ``prometheus_client`` at run time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pa_dbhealth.core import prometheus_waits
from pa_dbhealth.core.health import Report

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def wanted(fmt: str | None, accept: str) -> bool:
    """Whether a request asks for this format: ``?format=prometheus``, or a scraper's
    ``Accept`` (text/plain or OpenMetrics, without JSON) when no ``format`` is given."""
    if fmt:
        return fmt == "prometheus"
    exposition = "text/plain" in accept or "application/openmetrics-text" in accept
    return exposition and "application/json" not in accept


Sample = tuple[Mapping[str, str], Any]

# tracker figure -> (metric name, type, help)
PROCESS_METRICS = {
    "opened": (
        "pa_dbhealth_connections_opened_total",
        "counter",
        "Database connections this process has opened.",
    ),
    "closed": (
        "pa_dbhealth_connections_closed_total",
        "counter",
        "Database connections this process has closed.",
    ),
    "open": (
        "pa_dbhealth_process_open_connections",
        "gauge",
        "Database connections this process holds open now.",
    ),
    "leaks": (
        "pa_dbhealth_connection_leaks_total",
        "counter",
        "Connections this process left open past the end of a request or task.",
    ),
    "connect_retries": (
        "pa_dbhealth_connect_retries_total",
        "counter",
        "Connects refused by the connection cap and retried.",
    ),
    "connect_giveups": (
        "pa_dbhealth_connect_giveups_total",
        "counter",
        "Connects given up after the CONNECT_RETRY budget.",
    ),
    "connect_handoffs": (
        "pa_dbhealth_connect_handoffs_total",
        "counter",
        "Connections handed from a thread done with one to a thread waiting for the cap.",
    ),
    "probes_refused": (
        "pa_dbhealth_probes_refused_total",
        "counter",
        "Single-attempt looks (health view, commands, cap report) refused by the cap.",
    ),
}


def escape_label(value: str) -> str:
    """A label value as the text format wants it: backslash, quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _family(name: str, kind: str, help_text: str, samples: Iterable[Sample]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    for labels, value in samples:
        rendered = ",".join(f'{key}="{escape_label(val)}"' for key, val in labels.items())
        lines.append(f"{name}{{{rendered}}} {value}" if rendered else f"{name} {value}")
    return lines


def render(
    report: Report,
    *,
    full: bool,
    process: Mapping[str, int] | None = None,
    waits: Mapping[str, Any] | None = None,
) -> str:
    """The exposition text: ``pa_dbhealth_up`` alone unless ``full``, then every figure, the
    process's counts (``process``: the tracker's figures) and the host's wait figures
    (``waits``: :func:`pa_dbhealth.core.waits_host.host_figures`)."""
    lines = _family(
        "pa_dbhealth_up",
        "gauge",
        "Whether the database answered the health check (1) or not (0).",
        [({"database": db.alias}, int(db.up)) for db in report.databases],
    )
    if not full:
        return "\n".join(lines) + "\n"
    lines += _server_families(report)
    lines += _process_families(process or {})
    if waits is not None:
        lines += prometheus_waits.render(waits, _family)
    return "\n".join(lines) + "\n"


def _server_families(report: Report) -> list[str]:
    """What the server said of each database it answered for: connections by state, the
    account's cap, the idle timeout and the longest idleness."""
    taken = [db for db in report.databases if db.snapshot is not None]
    connections: list[Sample] = []
    limits: list[Sample] = []
    timeouts: list[Sample] = []
    idle: list[Sample] = []
    for db in taken:
        snapshot = db.snapshot
        assert snapshot is not None
        connections.append(({"database": db.alias, "state": "active"}, snapshot.active))
        connections.append(({"database": db.alias, "state": "sleeping"}, snapshot.sleeping))
        if snapshot.account_limit is not None:
            limits.append(({"database": db.alias}, snapshot.account_limit))
        if snapshot.wait_timeout is not None:
            timeouts.append(({"database": db.alias}, snapshot.wait_timeout))
        idle.append(({"database": db.alias}, snapshot.longest_idle_seconds))
    lines = _family(
        "pa_dbhealth_connections",
        "gauge",
        "Connections the database account holds on the server now, by state.",
        connections,
    )
    lines += _family(
        "pa_dbhealth_connection_limit",
        "gauge",
        "Connections the database account may hold at once (max_user_connections).",
        limits,
    )
    lines += _family(
        "pa_dbhealth_wait_timeout_seconds",
        "gauge",
        "Seconds of idleness after which the server drops a connection.",
        timeouts,
    )
    lines += _family(
        "pa_dbhealth_longest_idle_seconds",
        "gauge",
        "Seconds the account's longest-idle connection has been idle.",
        idle,
    )
    return lines


def _process_families(figures: Mapping[str, int]) -> list[str]:
    """This process's counts (the tracker's figures), one family per figure it has."""
    lines: list[str] = []
    for key, (name, kind, help_text) in PROCESS_METRICS.items():
        if key in figures:
            lines += _family(name, kind, help_text, [({}, figures[key])])
    return lines
