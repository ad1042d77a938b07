"""A throwaway PgBouncer for the tests, in front of the suite's PostgreSQL (``pgserver``).

``start(pg)`` writes a config in a fresh temporary folder and runs Debian's ``pgbouncer``
binary in the foreground on a free loopback port (the system service is never used):
transaction pooling, a pool of 3 server connections for the capped role ``app``, which
may also read the admin console (``stats_users``). As root it runs as the user the
PostgreSQL runs as (PgBouncer refuses to run as root).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pgserver import PgServer

from pa_dbhealth.sandbox.server import free_port

INSTALL_HINT = "on Debian/Ubuntu `apt-get install pgbouncer` (the system service is not needed)"
POOL_SIZE = 3

CONFIG = """\
[databases]
{database} = host={pg_host} port={pg_port} dbname={database}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {folder}/userlist.txt
pool_mode = transaction
default_pool_size = {pool}
max_client_conn = 100
stats_users = {user}
ignore_startup_parameters = extra_float_digits,options
logfile = {folder}/pgbouncer.log
"""


class PgBouncerMissing(Exception):
    """The binary is not installed: the PgBouncer tests skip."""


@dataclass
class PgBouncer:
    folder: Path
    port: int
    pg: PgServer
    proc: subprocess.Popen[Any]
    host: str = "127.0.0.1"
    pool: int = POOL_SIZE

    def database_settings(self, **extra: Any) -> dict[str, Any]:
        """A ``DATABASES`` entry for the capped role, through PgBouncer."""
        return {**self.pg.database_settings(), "PORT": str(self.port), **extra}

    def url(self, driver: str = "postgresql+psycopg") -> str:
        pg = self.pg
        return f"{driver}://{pg.user}:{pg.password}@{self.host}:{self.port}/{pg.database}"

    def log(self) -> str:
        path = self.folder / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""


def binary() -> str:
    found = shutil.which("pgbouncer", path=f"{os.environ.get('PATH', '')}:/usr/sbin")
    if found is None:
        raise PgBouncerMissing(f"pgbouncer is not installed: {INSTALL_HINT}")
    return found


def start(pg: PgServer) -> PgBouncer:
    """PgBouncer in front of ``pg``, once it accepts connections."""
    program = binary()
    folder = Path(tempfile.mkdtemp(prefix="pa_dbhealth-pgbouncer-"))
    port = free_port()
    (folder / "userlist.txt").write_text(f'"{pg.user}" "{pg.password}"\n')
    config = CONFIG.format(
        database=pg.database,
        pg_host=pg.host,
        pg_port=pg.port,
        port=port,
        folder=folder,
        pool=POOL_SIZE,
        user=pg.user,
    )
    (folder / "pgbouncer.ini").write_text(config)
    account = pwd.getpwnam(pg.run_as) if pg.run_as else None
    if account is not None:
        for path in (folder, *folder.iterdir()):
            os.chown(path, account.pw_uid, account.pw_gid)
    proc = subprocess.Popen(
        [program, str(folder / "pgbouncer.ini")],
        cwd=folder,
        user=account.pw_uid if account else None,
        group=account.pw_gid if account else None,
        extra_groups=[] if account else None,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    bouncer = PgBouncer(folder, port, pg, proc)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection((bouncer.host, port), timeout=1).close()
            return bouncer
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                stop(bouncer)
                raise RuntimeError(f"pgbouncer did not start:\n{bouncer.log()}") from None
            time.sleep(0.05)


def stop(bouncer: PgBouncer) -> None:
    """Stop it (its server connections close with it) and delete its folder."""
    if bouncer.proc.poll() is None:
        bouncer.proc.send_signal(signal.SIGINT)
        try:
            bouncer.proc.wait(10)
        except subprocess.TimeoutExpired:
            bouncer.proc.kill()
            bouncer.proc.wait(10)
    shutil.rmtree(bouncer.folder, ignore_errors=True)
