"""The load benchmark runs end to end (``--quick``) and reports its table; its outsiders
row runs alone (``--only outsiders``).

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

ROOT = Path(__file__).resolve().parent.parent
LOAD = ROOT / "bench" / "load.py"

uwsgi = shutil.which("uwsgi", path=str(Path(sys.executable).parent)) or shutil.which("uwsgi")
wrk = shutil.which("wrk")

pytestmark = [
    pytest.mark.matrix_once,  # the same on every Django version
    pytest.mark.skipif(not LOAD.exists(), reason="bench/ is not part of an installed package"),
    pytest.mark.skipif(uwsgi is None, reason="uwsgi is not installed (pip install uwsgi)"),
    pytest.mark.skipif(wrk is None, reason="wrk is not installed (apt-get install wrk)"),
]


def quick_run(*flags: str) -> tuple[str, list[dict[str, str]]]:
    """``load.py --quick`` with ``flags``: its output, and the rows of the one table it
    prints, by column."""
    result = run([sys.executable, str(LOAD), "--quick", *flags], timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.out + result.err
    header, *rows = [line for line in result.out.splitlines() if line.startswith("| ")]
    columns = header.strip("| ").split(" | ")
    return result.out, [dict(zip(columns, r.strip("| ").split(" | "), strict=True)) for r in rows]


def test_benchmark_smoke_run() -> None:
    out, table = quick_run("--no-outsiders")
    pa = "pa_dbhealth backend + middleware"
    runs = [(row["configuration"], row["clients"], row["held elsewhere"]) for row in table]
    assert runs == [
        ("plain, CONN_MAX_AGE=0", "8", "0"),
        ("plain, CONN_MAX_AGE=600", "8", "0"),
        *((pa, clients, "0") for clients in ("8", "16", "32")),
        *((pa + ", PARK", clients, "0") for clients in ("8", "16", "32")),
        *((pa + ", LINE off", clients, "0") for clients in ("8", "16", "32")),
        ("Flask, SQLAlchemy's default pool (5 + 10)", "8", "0"),
        ("Flask, hand-tuned pool (2 + 1, recycle 280)", "8", "0"),
        *(("Flask, pa_dbhealth (engine_options + DbHealth)", c, "0") for c in ("8", "16", "32")),
        ("plain, CONN_MAX_AGE=0", "8", "1"),
        (pa, "8", "1"),
        (pa + ", PARK", "8", "1"),
        (pa + ", LINE off", "8", "1"),
        ("Flask, SQLAlchemy's default pool (5 + 10)", "8", "1"),
        ("Flask, pa_dbhealth (engine_options + DbHealth)", "8", "1"),
    ]
    for row in table:
        assert float(row["2xx/s"]) > 0  # some requests succeeded
        assert 1 <= int(row["most held"]) <= 3  # the sampler saw the account's connections
        assert float(row["p50 ms"]) <= float(row["p99 ms"]) <= float(row["p99.9 ms"])
        assert row["limit/s"] == ("100" if row["held elsewhere"] == "1" else "150")
        assert re.fullmatch(r"pass|fail: [a-z0-9, -]+", row["target"])
    # The one held elsewhere was held all along: the site had at most two.
    assert all(float(r["mean held"]) >= 1 for r in table if r["held elsewhere"] == "1")
    assert re.search(r"^  throughput ratio .*: \d\.\d{3} ", out, re.MULTILINE)
    assert re.search(r"^  noise floor, .*: \d\.\d{3} ", out, re.MULTILINE)
    assert re.search(r"^  CPU ratio .*: \d\.\d{3} ", out, re.MULTILINE)
    assert re.search(r"^load average at the end: ", out, re.MULTILINE)
    assert re.search(r"^total time: \d+ s$", out, re.MULTILINE)


def test_outsiders_row_alone() -> None:
    """``--only outsiders``: the cap held outside all along; pa_dbhealth's sites answer each
    request with a 503 and Retry-After after CONNECT_RETRY (1 s with --quick), plain Django
    with a 500 at once; the server counted the connects it refused."""
    out, table = quick_run("--only", "outsiders")
    assert "throughput ratio" not in out  # nothing else ran
    assert "CONNECT_RETRY 1 s, 3 s per row" in out
    pa, flask = "pa_dbhealth backend + middleware", "Flask, pa_dbhealth (engine_options + DbHealth)"
    plain = "plain, CONN_MAX_AGE=0"
    runs = [(row["configuration"], row["clients"]) for row in table]
    assert runs == [(name, c) for name in (pa, flask, plain) for c in ("1", "4", "8")]
    for row in table:
        answered = int(row["answered"])
        assert row["held outside"] == "3" and answered >= 1
        assert int(row["refused connects"]) >= answered  # each answer followed a refusal
        assert re.fullmatch(r"pass|fail: [A-Za-z0-9, -]+", row["target"])
        if row["configuration"] == plain:
            assert row["statuses"] == f"{answered} x 500" and row["Retry-After"] == "0"
        else:
            assert row["statuses"] == f"{answered} x 503" and row["Retry-After"] == str(answered)
            assert 900 <= float(row["p50 ms"]) <= float(row["max ms"])  # waited CONNECT_RETRY
    assert re.search(r"^total time: \d+ s$", out, re.MULTILINE)


def test_open_loop_with_the_database_across_a_network() -> None:
    """``open_loop.py --rtt-ms``: the site reaches the server through the delaying proxy;
    every rate is reported, the idle site's statements and the console."""
    result = run(
        [
            sys.executable,
            str(ROOT / "bench" / "open_loop.py"),
            "--processes",
            "2",
            "--threads",
            "1",
            "--duration",
            "1",
            "--only",
            "9",
            "--rtt-ms",
            "0.5",
            "--idle-seconds",
            "1",
        ],
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.out + result.err
    assert "the database 0.5 ms away (round trip, through a proxy)" in result.out
    rows = [line.strip("| ").split(" | ") for line in result.out.splitlines()]
    rates = [row for row in rows if row[0].endswith("PARK") and len(row) == 10]
    assert [row[1] for row in rates] == ["25%", "50%", "75%", "90%"]
    for row in rates:
        assert int(row[3]) > 0 and float(row[5]) >= 20  # each holds its connection 20 ms
    (idle,) = [row for row in rows if row[0].endswith("PARK") and len(row) == 4]
    assert 0 < float(idle[1]) < 100  # the counts of the idle site's account, a second
    assert float(idle[2]) < 5000  # the console got in
