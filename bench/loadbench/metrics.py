"""The wait figures of pa_dbhealth's health view (issue #23), scraped at the end of a
configuration's run: the histogram of seconds waited for a connection, the gauges of who
waits now, and the counters of refusals, give-ups, handoffs, stale closes and repairs."""

from __future__ import annotations

import time
import urllib.request

TOKEN = "bench-only-token-for-the-wait-figures"  # the benchsite's HEALTH_TOKEN
WAIT_FAMILIES = (
    "pa_dbhealth_connect_wait_seconds",
    "pa_dbhealth_connects_waiting",
    "pa_dbhealth_connect_longest_wait_seconds",
    "pa_dbhealth_connect_refusals_total",
    "pa_dbhealth_connect_wait_giveups_total",
    "pa_dbhealth_connect_wait_handoffs_total",
    "pa_dbhealth_stale_closes_total",
    "pa_dbhealth_line_repairs_total",
)


def wait_figures(url: str) -> str:
    """The wait families of the Prometheus text at ``url`` (the health view), samples only,
    once the load is over and every worker has published its last figures."""
    time.sleep(1.5)  # the workers write their figures at most once a second
    request = urllib.request.Request(
        f"{url}/dbhealth/?format=prometheus", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        text = response.read().decode()
    return "\n".join(line for line in text.splitlines() if line.startswith(WAIT_FAMILIES))
