"""The "scheduled task" of the held-elsewhere scenario: another process that holds one of
the account's connections for the whole scenario, with no pa_dbhealth in it.

It keeps the connection busy (``SELECT SLEEP`` in short steps, so it is never idle long
enough to look stale to anyone) until its standard input closes, then closes it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator

from pa_dbhealth import sandbox

SCRIPT = """
import os, select, sys
import MySQLdb
conn = MySQLdb.connect(host=os.environ["DB_HOST"], port=int(os.environ["DB_PORT"]),
                       user=os.environ["DB_USER"], passwd=os.environ["DB_PASSWORD"],
                       db=os.environ["DB_NAME"])
cursor = conn.cursor()
cursor.execute("SELECT CONNECTION_ID()")
print(cursor.fetchone()[0], flush=True)
while not select.select([sys.stdin], [], [], 0)[0]:
    cursor.execute("SELECT SLEEP(0.2)")
    cursor.fetchall()
conn.close()
"""


@contextlib.contextmanager
def held_elsewhere(info: sandbox.SandboxInfo) -> Iterator[int]:
    """Hold one connection in a separate process while the block runs; yields its id."""
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **info.env()},
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        line = proc.stdout.readline()
        if not line.strip().isdigit():
            raise SystemExit("the held-elsewhere process could not open its connection")
        yield int(line)
    finally:
        proc.stdin.close()  # it finishes its step, closes and exits
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
