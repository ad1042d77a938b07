"""The status anonymous views share (``pa_dbhealth.core.status_cache``), with real threads."""

from __future__ import annotations

import threading
import time

import pytest

from pa_dbhealth.core.health import Report
from pa_dbhealth.core.status_cache import SharedStatus

pytestmark = pytest.mark.matrix_once  # the same on every Django version


def test_threads_asking_at_once_share_one_look_and_then_the_last_report() -> None:
    shared, looks, started = SharedStatus(), [], threading.Event()

    def look() -> Report:
        looks.append(threading.current_thread().name)
        started.set()
        time.sleep(0.3)  # a slow server
        return Report([])

    got: list[Report] = []
    threads = [
        threading.Thread(target=lambda: got.append(shared.report("k", look)), name=f"t{i}")
        for i in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(looks) == 1 and len(got) == 8 and len({id(r) for r in got}) == 1
    first = got[0]
    time.sleep(0.05)
    assert shared.report("k", look, fresh_for=10) is first  # fresh enough: no look
    # Stale: one thread looks again; the others answer at once with the last report.
    started.clear()
    looking = threading.Thread(target=lambda: shared.report("k", look, fresh_for=0))
    looking.start()
    assert started.wait(5)
    began = time.monotonic()
    assert shared.report("k", look, fresh_for=0) is first
    assert time.monotonic() - began < 0.2
    looking.join(10)
    assert len(looks) == 2
    assert shared.report("k", look, fresh_for=10) is not first
    assert shared.report("other", look) is not None and len(looks) == 3  # a key of its own
