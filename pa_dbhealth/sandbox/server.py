"""A throwaway MariaDB/MySQL server with PythonAnywhere's limits, for demos and tests.

It initialises a data directory of its own, listens on a loopback port and a socket of
its own (never touching a system server), and creates two accounts: ``app``, capped at
``MAX_USER_CONNECTIONS 3`` like a PythonAnywhere account, and ``admin``, uncapped, for
watching from outside. ``wait_timeout`` (300 s by default) and ``net_read_timeout``
(30 s) are set like the host's. A stopped server whose folder was kept is resumed by the
next ``start``. This is a development tool: no runtime module imports it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import signal
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from pa_dbhealth.core import line as lines
from pa_dbhealth.core.registry import server_key
from pa_dbhealth.sandbox import folder
from pa_dbhealth.sandbox.accounts import create_accounts, set_limit
from pa_dbhealth.sandbox.folder import default_dir
from pa_dbhealth.sandbox.info import SandboxError, SandboxInfo
from pa_dbhealth.sandbox.process import (
    find_binaries,
    free_port,
    initialise,
    launch,
    port_in_use,
    server_args,
    wait_gone,
)

__all__ = ["default_dir", "free_port", "restart", "start", "stop"]

logger = logging.getLogger("pa_dbhealth.sandbox")

HOST = "127.0.0.1"
DEFAULTS = {"wait_timeout": 300, "net_read_timeout": 30, "limit": 3}

SetUp = Callable[[Any, SandboxInfo], None]  # (root connection, info): accounts, cap


def start(
    base_dir: str | os.PathLike[str] | None = None,
    *,
    port: int | None = None,
    wait_timeout: int | None = None,
    net_read_timeout: int | None = None,
    limit: int | None = None,
    database: str | None = None,
    fresh: bool = False,
    startup_timeout: float = 60.0,
) -> SandboxInfo:
    """Start the server of the sandbox in ``base_dir`` (a new temporary folder when None).

    A folder holding a stopped sandbox (kept by ``stop(info, remove=False)``, or whose server
    was killed) is resumed: the same data, accounts and passwords, on the same port when it
    is free, else on a free one (said as a warning on the ``pa_dbhealth.sandbox`` logger);
    the options given apply, those left out keep their values. ``fresh=True`` wipes such a
    folder and starts from scratch. Defaults for a new server: ``wait_timeout=300``,
    ``net_read_timeout=30``, ``limit=3``, ``database="app"``.
    """
    given = _checked(
        {"wait_timeout": wait_timeout, "net_read_timeout": net_read_timeout, "limit": limit},
        database,
        port,
    )
    server, install_db, flavour = find_binaries()
    _require_mysqlclient()
    base = folder.chosen(base_dir)
    previous = folder.kept(base, fresh)
    if previous is not None:
        if database is not None and database != previous.database:
            raise SandboxError(
                f"the sandbox in {base} has the database {previous.database!r}, not "
                f"{database!r}: start a new one with --fresh"
            )
        return _resume(previous, server, flavour, port, given, startup_timeout)
    folder.clear(base, flavour)
    initialise(server, install_db, flavour, base / "data", base / "error.log")
    info = _new_info(base, port, flavour, database, {**DEFAULTS, **given})
    _launch(info, server, flavour, startup_timeout, create_accounts)
    return info


def _checked(
    values: dict[str, int | None], database: str | None, port: int | None
) -> dict[str, int]:
    """The options given (those not None) once checked: whole numbers >= 1, a database name
    of letters, digits and underscores, a port that is free."""
    for name, value in values.items():
        if value is not None and (not isinstance(value, int) or value < 1):
            raise SandboxError(f"{name} must be a whole number >= 1, not {value!r}")
    if database is not None and not database.replace("_", "").isalnum():
        raise SandboxError(f"database must be letters, digits and underscores, not {database!r}")
    if port is not None and port_in_use(HOST, port):
        raise SandboxError(
            f"port {port} on {HOST} is in use: choose another with --port, or leave it out"
        )
    return {name: value for name, value in values.items() if value is not None}


def _require_mysqlclient() -> None:
    try:
        import MySQLdb  # noqa: F401
    except ImportError:
        raise SandboxError("mysqlclient is not installed: `pip install mysqlclient`") from None


def _new_info(
    base: Path, port: int | None, flavour: str, database: str | None, chosen: dict[str, int]
) -> SandboxInfo:
    """A new sandbox's description, with fresh passwords; pid and version come at launch."""
    return SandboxInfo(
        base_dir=str(base),
        host=HOST,
        port=port or free_port(HOST),
        socket=str(base / "mysqld.sock"),
        pid=0,
        flavour=flavour,
        version="",
        database=database or "app",
        user="app",
        password=secrets.token_urlsafe(12),
        admin_user="admin",
        admin_password=secrets.token_urlsafe(12),
        wait_timeout=chosen["wait_timeout"],
        net_read_timeout=chosen["net_read_timeout"],
        limit=chosen["limit"],
    )


def _launch(
    info: SandboxInfo, server: str, flavour: str, startup_timeout: float, set_up: SetUp | None
) -> None:
    """Start ``info``'s server (setting its pid and version), run ``set_up`` on a root
    connection, and save ``info``. When ``set_up`` fails, the server is stopped (its folder
    kept) and the error raised."""
    base = Path(info.base_dir)
    args = server_args(
        server,
        flavour,
        base,
        info.port,
        wait_timeout=info.wait_timeout,
        net_read_timeout=info.net_read_timeout,
    )
    info.pid, root = launch(args, base, startup_timeout)
    info.flavour, info.version = flavour, root.get_server_info()
    try:
        if set_up is not None:
            set_up(root, info)
    except Exception:
        stop(info, remove=False)
        raise
    finally:
        root.close()
    info.save()


def _resume(
    previous: SandboxInfo,
    server: str,
    flavour: str,
    port: int | None,
    given: dict[str, int],
    startup_timeout: float,
) -> SandboxInfo:
    info = replace(
        previous,
        port=port or previous.port,
        wait_timeout=given.get("wait_timeout", previous.wait_timeout),
        net_read_timeout=given.get("net_read_timeout", previous.net_read_timeout),
        limit=given.get("limit", previous.limit),
    )
    if port is None and port_in_use(info.host, info.port):
        info.port = free_port(info.host)
        logger.warning(
            "port %s is in use now: the resumed server listens on port %s instead",
            previous.port,
            info.port,
        )
    changed = info.limit != previous.limit
    _launch(info, server, flavour, startup_timeout, set_limit if changed else None)
    logger.info("resumed the kept server in %s: same data, accounts and passwords", info.base_dir)
    return info


def stop(info: SandboxInfo, *, remove: bool = True, timeout: float = 30.0) -> None:
    """Stop the server (only when its pid is still this sandbox's server) and, unless
    ``remove`` is False, delete its folder. A kept folder is resumed by the next start."""
    if info.is_running():
        with contextlib.suppress(ProcessLookupError):
            os.kill(info.pid, signal.SIGTERM)
            os.kill(info.pid, signal.SIGCONT)  # a stopped (SIGSTOP) server handles it too
        if not wait_gone(info.pid, info.data_dir, timeout) and info.is_running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(info.pid, signal.SIGKILL)
            wait_gone(info.pid, info.data_dir, timeout)
    if remove:
        shutil.rmtree(info.base_dir, ignore_errors=True)
        # The line its clients waited in at the cap (pa_dbhealth.core.line) goes with it.
        server = server_key("mysql", info.host, info.port)
        for account in (info.user, info.admin_user):
            lines.forget(server, account)


def restart(info: SandboxInfo, *, startup_timeout: float = 60.0) -> SandboxInfo:
    """Bring ``info``'s server back on the same data, accounts and port, where its clients
    expect it: after a kill -9 (the server recovers its data), or to restart a running one
    (stopped first). ``info`` is updated (pid, version) and returned. Raises SandboxError
    when the port was taken meanwhile."""
    if info.is_running():
        stop(info, remove=False)
    if port_in_use(info.host, info.port):
        raise SandboxError(
            f"cannot restart the sandbox in {info.base_dir} on port {info.port}: "
            "the port is in use now"
        )
    back = start(info.base_dir, port=info.port, startup_timeout=startup_timeout)
    info.pid, info.version = back.pid, back.version
    return info
