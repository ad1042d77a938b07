"""The host-wide wait figures (:mod:`pa_dbhealth.core.waits_host`) as Prometheus families:
a histogram of seconds waited for a connection, gauges of who waits now, and counters."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pa_dbhealth.core import waits

Family = Callable[[str, str, str, Iterable[tuple[Mapping[str, str], Any]]], list[str]]

STALE_REASONS = ("dead", "idle", "max_age", "broken", "autocommit", "left_in_transaction")
# counter family -> (metric name, label name, label values always shown, help)
COUNTERS = {
    waits.REFUSALS: (
        "pa_dbhealth_connect_refusals_total",
        "kind",
        (waits.CAP, waits.QUOTA, waits.OTHER),
        "Connect attempts refused, by kind: cap (1226 max_user_connections, 1203, 1040), "
        "quota (1226 hourly limits), other (any other connect error).",
    ),
    waits.GIVEUPS: (
        "pa_dbhealth_connect_wait_giveups_total",
        "",
        ("",),
        "Connects that waited the whole CONNECT_RETRY budget and gave up, host-wide.",
    ),
    waits.HANDOFFS: (
        "pa_dbhealth_connect_wait_handoffs_total",
        "",
        ("",),
        "Waiting connects served by a connection a sibling thread handed over, host-wide.",
    ),
    waits.STALE: (
        "pa_dbhealth_stale_closes_total",
        "reason",
        STALE_REASONS,
        "Connections closed or replaced before reuse because they were stale, by reason.",
    ),
    waits.REPAIRS: (
        "pa_dbhealth_line_repairs_total",
        "kind",
        (waits.ADOPT, waits.TRIM, waits.SET_CAP, waits.HEAL),
        "Repairs of the account's line of connections when the server disagreed with it.",
    ),
}


def _number(value: float) -> str:
    return repr(float(value)) if value != int(value) else f"{float(value):.1f}"


def histogram(figures: Mapping[str, Any]) -> list[tuple[Mapping[str, str], Any]]:
    """The ``le`` samples, cumulative, every standard bound shown."""
    found = {float(bound): n for bound, n in figures["buckets"]}
    bounds = sorted({*waits.BUCKETS, *found})
    samples: list[tuple[Mapping[str, str], Any]] = []
    running = 0
    for bound in bounds:
        running += found.get(bound, 0)
        samples.append(({"le": _number(bound)}, running))
    samples.append(({"le": "+Inf"}, running + figures["beyond"]))
    return samples


def render(figures: Mapping[str, Any], family: Family) -> list[str]:
    """The families of ``figures`` (``family`` writes one: name, type, help, samples)."""
    name = "pa_dbhealth_connect_wait_seconds"
    lines = family(
        name,
        "histogram",
        "Seconds a connect waited for a connection (from its first refusal or wait in line "
        "to the connection or the give-up), host-wide.",
        [],
    )
    lines += [f'{name}_bucket{{le="{labels["le"]}"}} {n}' for labels, n in histogram(figures)]
    lines += [f"{name}_sum {figures['sum']:.6f}", f"{name}_count {figures['count']}"]
    lines += family(
        "pa_dbhealth_connects_waiting",
        "gauge",
        "Connects waiting for a connection now, in every process of this host.",
        [({}, figures["waiting"])],
    )
    lines += family(
        "pa_dbhealth_connect_longest_wait_seconds",
        "gauge",
        "Seconds the longest current wait for a connection has lasted (0: nobody waits).",
        [({}, figures["longest_wait_seconds"])],
    )
    for key, (metric, label, shown, help_text) in COUNTERS.items():
        counted = dict(figures["counters"].get(key, {}))
        values = [*shown, *sorted(set(counted) - set(shown))]
        samples = [({label: v} if label else {}, counted.get(v, 0)) for v in values]
        lines += family(metric, "counter", help_text, samples)
    return lines
