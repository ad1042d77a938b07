"""The server process: which binaries, how it is started, and whether a pid is still it.

A pid in a state file outlives its process: after a reboot or a kill, the number may
belong to anything. A pid counts as this sandbox's server only while its command line
is a ``mariadbd``/``mysqld`` with this sandbox's own ``--datadir``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from pa_dbhealth.sandbox.info import SandboxError

INSTALL_HINT = (
    "install the server binaries: on Debian/Ubuntu `sudo apt-get install mariadb-server` "
    "(it is enough to have them installed: the sandbox starts its own server)"
)
SEARCH_DIRS = ("/usr/sbin", "/usr/local/sbin", "/usr/local/mysql/bin", "/usr/local/bin", "/usr/bin")
SERVER_NAMES = ("mariadbd", "mysqld")


def _which(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name) or shutil.which(name, path=os.pathsep.join(SEARCH_DIRS))
        if found:
            return found
    return None


def find_binaries() -> tuple[str, str | None, str]:
    """``(server, install_db, flavour)``; raises SandboxError saying what to install."""
    server = _which(*SERVER_NAMES)
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


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def command_line(pid: int) -> list[str]:
    """The process's arguments; empty when there is no such process (or it is a zombie)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        if Path("/proc/self").exists():
            return []
        # No /proc (macOS, the BSDs): ps joins the arguments with spaces.
        shown = subprocess.run(
            ["ps", "-ww", "-p", str(pid), "-o", "command="],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        return shown.split()
    except OSError:  # not ours to read: not our server either
        return []
    return [arg.decode(errors="replace") for arg in raw.split(b"\0") if arg]


def is_server(pid: int, data_dir: str | os.PathLike[str]) -> bool:
    """Whether ``pid`` is a running MariaDB/MySQL server on ``data_dir``."""
    if pid <= 0:
        return False
    argv = command_line(pid)
    if not argv or os.path.basename(argv[0]) not in SERVER_NAMES:
        return False
    wanted = os.path.realpath(data_dir)
    return any(
        arg.startswith("--datadir=") and os.path.realpath(arg.split("=", 1)[1]) == wanted
        for arg in argv[1:]
    )


def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    """``(state, start time, threads)`` of the process; None when there is none."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[0], int(fields[19]), int(fields[17])


def wait_gone(pid: int, data_dir: str | os.PathLike[str], timeout: float) -> bool:
    """Wait until the server ``pid`` (a running server when called) has exited and released
    its port and files; False after ``timeout`` seconds.

    Its command line is no guide here: a dying server loses it (or shows part of it) while
    its threads still hold the listening socket. Exited means: no such process any more, a
    process started since (the pid reused), or a zombie whose other threads are gone.
    """
    deadline = time.monotonic() + timeout
    first = _proc_stat(pid)
    if first is None and not Path("/proc/self").exists():  # no /proc: ask ps
        while is_server(pid, data_dir):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True
    while first is not None:
        now = _proc_stat(pid)
        if now is None or now[1] != first[1] or (now[0] in ("Z", "X") and now[2] <= 1):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def last_error(log: Path, since: int = 0) -> str:
    """Why the server (or the initialisation) failed, from its log past byte ``since``."""
    try:
        with log.open("rb") as text:
            text.seek(since)
            lines = text.read().decode(errors="replace").splitlines()
    except OSError:
        return "no log"
    # The first error says why; the last one is often only "[ERROR] Aborting".
    errors = [line for line in lines if "ERROR" in line.upper()]
    causes = [line for line in errors if not line.rstrip().endswith("Aborting")]
    cause = (causes[:1] or errors[-1:] or lines[-1:] or ["no output"])[0].strip()
    return f"{cause} (full log: {log})"


def initialise(server: str, install_db: str | None, flavour: str, data: Path, log: Path) -> None:
    """Create a fresh data directory (system tables, a passwordless root on the socket).

    With a temporary folder of its own: two installs at once in the same /tmp collide on
    their temporary tables and abort ("Unknown table 'mysql.tmp_user_sys'")."""
    tmp = data.parent / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
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
    cmd.append(f"--tmpdir={tmp}")
    if os.geteuid() == 0:
        cmd.append("--user=root")
    with log.open("ab") as out:
        result = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False, timeout=300)
    if result.returncode != 0:
        raise SandboxError(
            f"initialising the data directory failed (exit {result.returncode}): {last_error(log)}"
        )


def server_args(
    server: str, flavour: str, base: Path, port: int, *, wait_timeout: int, net_read_timeout: int
) -> list[str]:
    args = [
        server,
        "--no-defaults",
        f"--datadir={base / 'data'}",
        f"--port={port}",
        "--bind-address=127.0.0.1",
        f"--socket={base / 'mysqld.sock'}",
        f"--pid-file={base / 'mysqld.pid'}",
        f"--log-error={base / 'error.log'}",
        f"--tmpdir={base / 'tmp'}",
        "--skip-name-resolve",
        f"--wait-timeout={wait_timeout}",
        f"--interactive-timeout={wait_timeout}",
        f"--net-read-timeout={net_read_timeout}",
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


def launch(args: list[str], base: Path, timeout: float) -> tuple[int, Any]:
    """Start the server in a session of its own; returns its pid and a root connection
    over its socket once it answers."""
    import MySQLdb

    sock, log = base / "mysqld.sock", base / "error.log"
    (base / "tmp").mkdir(exist_ok=True)
    sock.unlink(missing_ok=True)  # left by a server that was killed
    since = log.stat().st_size if log.exists() else 0
    with (base / "server.out").open("ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise SandboxError(
                f"the server exited at start (exit {proc.returncode}): {last_error(log, since)}"
            )
        try:
            return proc.pid, MySQLdb.connect(unix_socket=str(sock), user="root", password="")
        except MySQLdb.OperationalError as exc:
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                raise SandboxError(
                    f"the server did not answer within {timeout:g} s: {exc}"
                ) from None
        time.sleep(0.1)
