"""Connections held by another process, with no pa_dbhealth in it: the "scheduled task" of
the held-elsewhere scenario (one connection), the console of the outsiders scenario (all
the account's connections).

It keeps its connections busy (``SELECT SLEEP`` in short steps, one connection after the
other, so none is idle long enough to look stale to anyone) until its standard input
closes, then closes them.
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
conns = [MySQLdb.connect(host=os.environ["DB_HOST"], port=int(os.environ["DB_PORT"]),
                         user=os.environ["DB_USER"], passwd=os.environ["DB_PASSWORD"],
                         db=os.environ["DB_NAME"]) for _ in range(int(sys.argv[1]))]
cursors = [conn.cursor() for conn in conns]
for cursor in cursors:
    cursor.execute("SELECT CONNECTION_ID()")
    print(cursor.fetchone()[0], flush=True)
step = 0
while not select.select([sys.stdin], [], [], 0)[0]:
    cursor = cursors[step % len(cursors)]
    cursor.execute("SELECT SLEEP(0.2)")
    cursor.fetchall()
    step += 1
for conn in conns:
    conn.close()
"""


@contextlib.contextmanager
def held_elsewhere(info: sandbox.SandboxInfo, count: int = 1) -> Iterator[list[int]]:
    """Hold ``count`` connections in a separate process while the block runs; yields their
    ids."""
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(count)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **info.env()},
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        ids = [proc.stdout.readline().strip() for _ in range(count)]
        if not all(id_.isdigit() for id_ in ids):
            raise SystemExit(f"the held-elsewhere process could not open its {count} connection(s)")
        yield [int(id_) for id_ in ids]
    finally:
        proc.stdin.close()  # it finishes its step, closes and exits
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
