"""The load benchmark runs end to end (a second per configuration) and reports its table.

Its numbers are not asserted here: they depend on the machine. bench/load.py starts its
own capped server and uWSGI, and stops both.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest
from processes import run

pytestmark = pytest.mark.matrix_once  # the same on every Django version

ROOT = Path(__file__).resolve().parent.parent
LOAD = ROOT / "bench" / "load.py"

uwsgi = shutil.which("uwsgi", path=str(Path(sys.executable).parent)) or shutil.which("uwsgi")
wrk = shutil.which("wrk")


@pytest.mark.skipif(not LOAD.exists(), reason="bench/ is not part of an installed package")
@pytest.mark.skipif(uwsgi is None, reason="uwsgi is not installed (pip install uwsgi)")
@pytest.mark.skipif(wrk is None, reason="wrk is not installed (apt-get install wrk)")
def test_benchmark_smoke_run() -> None:
    result = run([sys.executable, str(LOAD), "--smoke"], timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.out + result.err
    out = result.out
    rows = [line for line in out.splitlines() if line.startswith("| ")]
    names = [
        "plain, CONN_MAX_AGE=0",
        "plain, CONN_MAX_AGE=600",
        "pa_dbhealth backend + middleware",
        "Flask, SQLAlchemy's default pool (5 + 10)",
        "Flask, hand-tuned pool (2 + 1, recycle 280)",
        "Flask, pa_dbhealth (engine_options + DbHealth)",
    ]
    assert [row.split(" | ")[0].removeprefix("| ") for row in rows[1:]] == names
    for row in rows[1:]:
        cells = row.strip("| ").split(" | ")
        assert float(cells[1]) > 0  # some requests succeeded
        assert 1 <= int(cells[9]) <= 3  # the sampler saw the account's connections
    assert re.search(r"^no-database view, .*: ratio \d\.\d{3} ", out, re.MULTILINE)
    assert re.search(r"^uWSGI CPU time per request: .*: ratio \d\.\d{3} ", out, re.MULTILINE)
