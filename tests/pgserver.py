"""A throwaway PostgreSQL for the test suite, like ``pa_dbhealth.sandbox`` for MariaDB.

``start()`` runs ``initdb`` in a fresh temporary folder and starts the server on 127.0.0.1,
on a free port, with its socket in that folder (a system server on 5432 is never touched).
It creates a role ``app`` capped with ``CONNECTION LIMIT 3`` (like a PythonAnywhere account)
that owns a database ``app``; the bootstrap superuser ``admin`` is uncapped, for watching.
initdb refuses to run as root: as root, everything runs as the ``postgres`` system user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import secrets
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pa_dbhealth.sandbox.server import free_port

INSTALL_HINT = "on Debian/Ubuntu `apt-get install postgresql` (the system service is not needed)"
BINARIES = ("initdb", "pg_ctl", "postgres")


class PgServerError(Exception):
    """Why the server could not be started, in one line."""


class PgMissing(PgServerError):
    """The binaries are not installed: the PostgreSQL tests skip."""


@dataclass
class PgServer:
    base_dir: Path
    bin_dir: Path
    major: int
    port: int
    password: str
    admin_password: str
    run_as: str | None  # the system user the server runs as; None: this process's user
    host: str = "127.0.0.1"
    user: str = "app"
    admin_user: str = "admin"
    database: str = "app"
    limit: int = 3
    idle_session_timeout: int | None = 300  # None before PostgreSQL 14
    idle_in_transaction_timeout: int = 60

    def database_settings(self) -> dict[str, Any]:
        """A ``DATABASES`` entry for the capped role."""
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": self.database,
            "USER": self.user,
            "PASSWORD": self.password,
            "HOST": self.host,
            "PORT": str(self.port),
        }

    def connect(self, *, admin: bool = False, **kwargs: Any) -> Any:
        """A raw psycopg connection over TCP in autocommit mode, as ``app`` unless ``admin``."""
        import psycopg

        options: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": self.admin_user if admin else self.user,
            "password": self.admin_password if admin else self.password,
            "dbname": self.database,
            "autocommit": True,
        }
        return psycopg.connect(**{**options, **kwargs})


def find_bin_dir() -> tuple[Path, int]:
    """The newest folder holding initdb, pg_ctl and postgres, and its major version."""
    dirs = set(glob.glob("/usr/lib/postgresql/*/bin"))
    on_path = shutil.which("initdb")
    if on_path:
        dirs.add(os.path.dirname(os.path.realpath(on_path)))
    found: list[tuple[tuple[int, ...], Path]] = []
    for folder in map(Path, dirs):
        if all(os.access(folder / name, os.X_OK) for name in BINARIES):
            banner = subprocess.run(
                [folder / "postgres", "--version"], capture_output=True, text=True, check=False
            ).stdout
            match = re.search(r"(\d+)(?:\.(\d+))?", banner)
            if match:
                found.append((tuple(int(n) for n in match.groups("0")), folder))
    if not found:
        raise PgMissing(
            f"no PostgreSQL binaries ({', '.join(BINARIES)}) on PATH or in "
            f"/usr/lib/postgresql/*/bin: {INSTALL_HINT}"
        )
    version, folder = max(found)
    return folder, version[0]


def _run(server: PgServer, *args: str | Path, what: str) -> None:
    # As root: the postgres user, from a folder it may enter, with its own group only.
    account = pwd.getpwnam(server.run_as) if server.run_as else None
    result = subprocess.run(
        [str(a) for a in args],
        cwd=server.base_dir,
        user=account.pw_uid if account else None,
        group=account.pw_gid if account else None,
        extra_groups=[] if account else None,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        log = server.base_dir / "server.log"
        lines = (log.read_text(errors="replace") if log.exists() else "").splitlines()
        lines = lines or (result.stderr + result.stdout).strip().splitlines() or ["no output"]
        errors = [line for line in lines if re.search(r"FATAL|ERROR|PANIC|error", line)]
        raise PgServerError(f"{what} failed (exit {result.returncode}): {(errors or lines)[-1]}")


def start() -> PgServer:
    """Initialise and start a fresh server; raises PgMissing or PgServerError."""
    bin_dir, major = find_bin_dir()
    run_as = "postgres" if os.geteuid() == 0 else None
    if run_as:
        try:
            pwd.getpwnam(run_as)
        except KeyError:
            raise PgServerError("running as root and there is no `postgres` user") from None
    base = Path(tempfile.mkdtemp(prefix="pa_dbhealth-pg-"))
    server = PgServer(
        base_dir=base,
        bin_dir=bin_dir,
        major=major,
        port=free_port(),
        password=secrets.token_hex(12),
        admin_password=secrets.token_hex(12),
        run_as=run_as,
        idle_session_timeout=300 if major >= 14 else None,
    )
    try:
        (base / "admin.pw").write_text(server.admin_password)
        if run_as:
            shutil.chown(base, run_as)
            shutil.chown(base / "admin.pw", run_as)
        _run(
            server,
            *(bin_dir / "initdb", "-D", base / "data", "-U", server.admin_user),
            *("--pwfile", base / "admin.pw", "-A", "scram-sha-256", "-E", "UTF8", "--no-locale"),
            "--no-sync",
            what="initdb",
        )
        options = [
            "-c listen_addresses=127.0.0.1",
            f"-p {server.port}",
            f"-c unix_socket_directories={shlex.quote(str(base))}",
            "-c max_connections=20",
            "-c fsync=off",
            f"-c idle_in_transaction_session_timeout={server.idle_in_transaction_timeout}s",
        ]
        if server.idle_session_timeout:
            options.append(f"-c idle_session_timeout={server.idle_session_timeout}s")
        _run(
            server,
            *(bin_dir / "pg_ctl", "start", "-w", "-t", "60", "-D", base / "data"),
            *("-l", base / "server.log", "-o", " ".join(options)),
            what=f"starting PostgreSQL {major} on port {server.port}",
        )
        _create_role(server)
    except BaseException:
        stop(server)
        raise
    return server


def _create_role(server: PgServer) -> None:
    try:
        from psycopg import sql
    except ImportError:
        raise PgServerError("psycopg is not installed: `pip install psycopg[binary]`") from None
    with server.connect(admin=True, dbname="postgres") as admin:
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} CONNECTION LIMIT {} CREATEDB").format(
                sql.Identifier(server.user), sql.Literal(server.password), sql.Literal(server.limit)
            )
        )
        admin.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(server.database), sql.Identifier(server.user)
            )
        )


def stop(server: PgServer) -> None:
    """Stop the server (immediately: its data is thrown away) and delete its folder."""
    data = server.base_dir / "data"
    if (data / "postmaster.pid").exists():
        with contextlib.suppress(PgServerError):
            _run(server, server.bin_dir / "pg_ctl", "stop", "-m", "immediate", "-D", data, what="")
    shutil.rmtree(server.base_dir, ignore_errors=True)
