"""Where the demo's database comes from: the environment, the local capped server, or SQLite."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

# The demo is wired with everything pa_dbhealth offers, its MySQL backend included: the
# ENGINE is the demo's choice, whatever server it is pointed at.
ENGINE = "pa_dbhealth.backends.mysql"
ENV_KEYS = ("DB_HOST", "DB_PORT", "DB_NAME", "DB_USER", "DB_PASSWORD")


def from_environment() -> dict[str, Any] | None:
    """A MySQL/MariaDB server named by ``DB_HOST``, ``DB_PORT``, ``DB_NAME``, ``DB_USER`` and
    ``DB_PASSWORD`` (what ``python -m pa_dbhealth.sandbox env`` prints)."""
    if not os.environ.get("DB_HOST"):
        return None
    settings: dict[str, Any] = {"ENGINE": ENGINE, "OPTIONS": {"charset": "utf8mb4"}}
    for key in ENV_KEYS:
        settings[key.removeprefix("DB_")] = os.environ.get(key, "")
    return settings


def from_sandbox() -> dict[str, Any] | None:
    """The local capped server, started on first use when the server binaries are there."""
    from pa_dbhealth import sandbox

    try:
        sandbox.find_binaries()
        import MySQLdb  # noqa: F401
    except (sandbox.SandboxError, ImportError):
        return None
    try:
        info = sandbox.SandboxInfo.load(sandbox.default_dir())
        if not info.is_running():
            raise sandbox.SandboxError("stopped")
    except sandbox.SandboxError:
        try:
            info = sandbox.start(sandbox.default_dir())
        except sandbox.SandboxError as exc:
            print(f"demo: cannot start the local capped server: {exc}", file=sys.stderr)
            return None
        print(
            f"demo: started the local capped server on {info.host}:{info.port} "
            f"(stop it with `python -m pa_dbhealth.sandbox stop`)",
            file=sys.stderr,
        )
    return info.database_settings(engine=ENGINE)


def sqlite(base_dir: Path) -> dict[str, Any]:
    print(
        "demo: no database configured and no MariaDB/MySQL server binaries found: using SQLite, "
        "where connection caps and idle timeouts are not simulated",
        file=sys.stderr,
    )
    return {"ENGINE": "django.db.backends.sqlite3", "NAME": base_dir / "demo.sqlite3"}


def default_database(base_dir: Path) -> dict[str, Any]:
    return from_environment() or from_sandbox() or sqlite(base_dir)
