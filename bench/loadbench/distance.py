"""The database across a network: a delaying proxy between the site and the server.

On loopback a connect costs a request well under a millisecond; where the database is on
another machine (PythonAnywhere's MySQL servers are), every round trip of the login and of
each query adds the network's. ``--rtt-ms`` runs the site through the tests' own loopback
proxy (``tests/proxy.py``), in a process of its own so it takes no time from the load
generator's threads: every byte either way arrives half the round trip late. The proxy
connects to the server at once, so the TCP handshake of a connect is not delayed: a connect
through it costs one round trip less than across a real network.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

TESTS = Path(__file__).resolve().parents[2] / "tests"

SCRIPT = """
import sys
sys.path.insert(0, sys.argv[1])
from proxy import Proxy
with Proxy((sys.argv[2], int(sys.argv[3]))) as proxy:
    proxy.delay(float(sys.argv[4]))
    print(proxy.port, flush=True)
    sys.stdin.read()  # until the bench closes it
"""


@contextlib.contextmanager
def far_away(host: str, port: int, rtt_ms: float) -> Iterator[int]:
    """A port on 127.0.0.1 that leads to ``host:port`` with ``rtt_ms`` of round trip."""
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(TESTS), host, str(port), str(rtt_ms / 2000)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        yield int(process.stdout.readline())
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=10)
