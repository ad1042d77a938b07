"""A throwaway MariaDB/MySQL server with PythonAnywhere's limits, for demos and tests.

It initialises a fresh data directory, listens on a loopback port and a socket of its
own (never touching a system server), and creates two accounts: ``app``, capped at
``MAX_USER_CONNECTIONS 3`` like a PythonAnywhere account, and ``admin``, uncapped, for
watching from outside. ``wait_timeout`` (300 s by default) and ``net_read_timeout``
(30 s) are set like the host's. This is a development tool: no runtime module imports it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

STATE_FILE = "sandbox.json"
INSTALL_HINT = (
    "install the server binaries: on Debian/Ubuntu `sudo apt-get install mariadb-server` "
    "(it is enough to have them installed: the sandbox starts its own server)"
)
SEARCH_DIRS = ("/usr/sbin", "/usr/local/sbin", "/usr/local/mysql/bin", "/usr/local/bin", "/usr/bin")


class SandboxError(Exception):
    """A problem the user can fix, said in one line."""


@dataclass
class SandboxInfo:
    """Where a running sandbox is and how to log in to it."""

    base_dir: str
    host: str
    port: int
    socket: str
    pid: int
    flavour: str
    version: str
    wait_timeout: int
    net_read_timeout: int
    limit: int
    database: str
    user: str
    password: str
    admin_user: str
    admin_password: str

    def env(self) -> dict[str, str]:
        """The environment variables the demo project (and your own settings) can read."""
        return {
            "DB_ENGINE": "django.db.backends.mysql",
            "DB_HOST": self.host,
            "DB_PORT": str(self.port),
            "DB_NAME": self.database,
            "DB_USER": self.user,
            "DB_PASSWORD": self.password,
            "DB_ADMIN_USER": self.admin_user,
            "DB_ADMIN_PASSWORD": self.admin_password,
        }

    def database_settings(
        self, *, admin: bool = False, engine: str = "django.db.backends.mysql"
    ) -> dict[str, Any]:
        """A ``DATABASES`` entry for the capped account (or the admin one)."""
        return {
            "ENGINE": engine,
            "NAME": self.database,
            "USER": self.admin_user if admin else self.user,
            "PASSWORD": self.admin_password if admin else self.password,
            "HOST": self.host,
            "PORT": str(self.port),
            "OPTIONS": {"charset": "utf8mb4"},
        }

    def connect(self, *, admin: bool = False, **kwargs: Any) -> Any:
        """A raw MySQLdb connection over TCP, as the capped account unless ``admin``."""
        import MySQLdb

        options: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": self.admin_user if admin else self.user,
            "password": self.admin_password if admin else self.password,
            "database": self.database,
        }
        options.update(kwargs)
        return MySQLdb.connect(**options)

    def is_running(self) -> bool:
        return _pid_alive(self.pid)

    def save(self) -> None:
        path = Path(self.base_dir) / STATE_FILE
        path.write_text(json.dumps(asdict(self), indent=2))
        path.chmod(0o600)

    @classmethod
    def load(cls, base_dir: str | os.PathLike[str]) -> SandboxInfo:
        path = Path(base_dir) / STATE_FILE
        try:
            return cls(**json.loads(path.read_text()))
        except FileNotFoundError:
            raise SandboxError(
                f"no sandbox in {base_dir}: start one with `python -m pa_dbhealth.sandbox start`"
            ) from None
        except (ValueError, TypeError) as exc:
            raise SandboxError(f"{path} is not a sandbox state file ({exc})") from None


def default_dir() -> Path:
    """The folder the command-line tool uses unless told otherwise."""
    user = os.environ.get("USER") or str(os.getuid())
    return Path(tempfile.gettempdir()) / f"pa_dbhealth-sandbox-{user}"


def _which(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name) or shutil.which(name, path=os.pathsep.join(SEARCH_DIRS))
        if found:
            return found
    return None


def find_binaries() -> tuple[str, str | None, str]:
    """``(server, install_db, flavour)``; raises SandboxError saying what to install."""
    server = _which("mariadbd", "mysqld")
    if server is None:
        raise SandboxError(
            f"no MariaDB/MySQL server binary (mariadbd or mysqld) found: {INSTALL_HINT}"
        )
    try:
        banner = subprocess.run(
            [server, "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except OSError as exc:
        raise SandboxError(f"cannot run {server}: {exc}") from None
    flavour = "MariaDB" if "mariadb" in banner.lower() else "MySQL"
    install_db = _which("mariadb-install-db", "mysql_install_db") if flavour == "MariaDB" else None
    if flavour == "MariaDB" and install_db is None:
        raise SandboxError(f"found {server} but not mariadb-install-db: {INSTALL_HINT}")
    return server, install_db, flavour


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); reap it if it is ours.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return done == 0


def _run(cmd: list[str], log: Path, what: str) -> None:
    with log.open("ab") as out:
        result = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False, timeout=300)
    if result.returncode != 0:
        raise SandboxError(f"{what} failed (exit {result.returncode}): {_last_error(log)}")


def _last_error(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return "no log"
    errors = [line for line in lines if "ERROR" in line.upper()]
    last = (errors or lines or ["no output"])[-1].strip()
    return f"{last} (full log: {log})"


def _server_args(
    server: str, flavour: str, data: Path, base: Path, port: int, **limits: int
) -> list[str]:
    args = [
        server,
        "--no-defaults",
        f"--datadir={data}",
        f"--port={port}",
        "--bind-address=127.0.0.1",
        f"--socket={base / 'mysqld.sock'}",
        f"--pid-file={base / 'mysqld.pid'}",
        f"--log-error={base / 'error.log'}",
        f"--tmpdir={base / 'tmp'}",
        "--skip-name-resolve",
        f"--wait-timeout={limits['wait_timeout']}",
        f"--interactive-timeout={limits['wait_timeout']}",
        f"--net-read-timeout={limits['net_read_timeout']}",
        "--max-connections=100",
        "--innodb-buffer-pool-size=32M",
        "--character-set-server=utf8mb4",
    ]
    args.append("--skip-log-bin" if flavour == "MariaDB" else "--disable-log-bin")
    if flavour == "MySQL":
        args.append("--mysqlx=OFF")
    if os.geteuid() == 0:
        args.append("--user=root")
    return args


def _initialise(server: str, install_db: str | None, flavour: str, data: Path, log: Path) -> None:
    if flavour == "MariaDB" and install_db:
        cmd = [
            install_db,
            "--no-defaults",
            f"--datadir={data}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ]
    else:
        cmd = [server, "--no-defaults", "--initialize-insecure", f"--datadir={data}"]
    if os.geteuid() == 0:
        cmd.append("--user=root")
    _run(cmd, log, "initialising the data directory")


def _wait_ready(proc: subprocess.Popen[bytes], sock: Path, log: Path, timeout: float) -> Any:
    import MySQLdb

    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise SandboxError(
                f"the server exited at start (exit {proc.returncode}): {_last_error(log)}"
            )
        try:
            return MySQLdb.connect(unix_socket=str(sock), user="root", password="")
        except MySQLdb.OperationalError as exc:
            if time.monotonic() > deadline:
                proc.terminate()
                raise SandboxError(
                    f"the server did not answer within {timeout:g} s: {exc}"
                ) from None
        time.sleep(0.1)


def _create_accounts(conn: Any, info: SandboxInfo) -> None:
    cursor = conn.cursor()
    cursor.execute(
        "SELECT User, Host FROM mysql.user"
        " WHERE User = '' OR (User = 'root' AND Host <> 'localhost')"
    )
    for user, host in cursor.fetchall():
        cursor.execute("DROP USER %s@%s", [user, host])
    cursor.execute(f"CREATE DATABASE `{info.database}` CHARACTER SET utf8mb4")
    cursor.execute(
        f"CREATE USER %s@'%%' IDENTIFIED BY %s WITH MAX_USER_CONNECTIONS {int(info.limit)}",
        [info.user, info.password],
    )
    cursor.execute(f"GRANT ALL PRIVILEGES ON `{info.database}`.* TO %s@'%%'", [info.user])
    # Django's test runner creates and drops test_<name> databases with the same account.
    cursor.execute("GRANT ALL PRIVILEGES ON `test\\_%%`.* TO %s@'%%'", [info.user])
    cursor.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", [info.admin_user, info.admin_password])
    cursor.execute("GRANT ALL PRIVILEGES ON *.* TO %s@'%%' WITH GRANT OPTION", [info.admin_user])
    cursor.close()
    conn.close()


def start(
    base_dir: str | os.PathLike[str] | None = None,
    *,
    port: int | None = None,
    wait_timeout: int = 300,
    net_read_timeout: int = 30,
    limit: int = 3,
    database: str = "app",
    startup_timeout: float = 60.0,
) -> SandboxInfo:
    """Initialise and start a fresh server; returns how to reach it.

    ``base_dir`` must not hold a running sandbox; leftovers of a stopped one are wiped.
    """
    host = "127.0.0.1"
    for name, value in (
        ("wait_timeout", wait_timeout),
        ("net_read_timeout", net_read_timeout),
        ("limit", limit),
    ):
        if not isinstance(value, int) or value < 1:
            raise SandboxError(f"{name} must be a whole number >= 1, not {value!r}")
    if not database.replace("_", "").isalnum():
        raise SandboxError(f"database must be letters, digits and underscores, not {database!r}")
    if port is not None and _port_in_use(host, port):
        raise SandboxError(
            f"port {port} on {host} is in use: choose another with --port, or leave it out"
        )
    server, install_db, flavour = find_binaries()
    try:
        import MySQLdb  # noqa: F401
    except ImportError:
        raise SandboxError("mysqlclient is not installed: `pip install mysqlclient`") from None

    base = Path(base_dir) if base_dir else Path(tempfile.mkdtemp(prefix="pa_dbhealth-sandbox-"))
    if (base / STATE_FILE).exists():
        previous = SandboxInfo.load(base)
        if previous.is_running():
            raise SandboxError(
                f"a sandbox is already running in {base} "
                f"on port {previous.port} (pid {previous.pid})"
            )
    for leftover in ("data", "tmp", STATE_FILE, "mysqld.sock", "mysqld.pid", "error.log"):
        path = base / leftover
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    base.mkdir(parents=True, exist_ok=True)
    data = base / "data"
    log = base / "error.log"
    (base / "tmp").mkdir(exist_ok=True)
    _initialise(server, install_db, flavour, data, log)

    chosen = port or free_port(host)
    args = _server_args(
        server,
        flavour,
        data,
        base,
        chosen,
        wait_timeout=wait_timeout,
        net_read_timeout=net_read_timeout,
    )
    with (base / "server.out").open("ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    root = _wait_ready(proc, base / "mysqld.sock", log, startup_timeout)
    version = root.get_server_info()
    info = SandboxInfo(
        base_dir=str(base),
        host=host,
        port=chosen,
        socket=str(base / "mysqld.sock"),
        pid=proc.pid,
        flavour=flavour,
        version=version,
        wait_timeout=wait_timeout,
        net_read_timeout=net_read_timeout,
        limit=limit,
        database=database,
        user="app",
        password=secrets.token_urlsafe(12),
        admin_user="admin",
        admin_password=secrets.token_urlsafe(12),
    )
    try:
        _create_accounts(root, info)
    except Exception:
        stop(info, remove=False)
        raise
    info.save()
    return info


def stop(info: SandboxInfo, *, remove: bool = True, timeout: float = 30.0) -> None:
    """Stop the server by its pid and, unless ``remove`` is False, delete its folder."""
    if info.is_running():
        os.kill(info.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while info.is_running() and time.monotonic() < deadline:
            time.sleep(0.1)
        if info.is_running():
            os.kill(info.pid, signal.SIGKILL)
            while info.is_running():
                time.sleep(0.05)
    if remove:
        shutil.rmtree(info.base_dir, ignore_errors=True)
