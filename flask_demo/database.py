"""Where the Flask demo's database comes from: $DATABASE_URL, the sandbox's DB_* variables
(``eval "$(python -m pa_dbhealth.sandbox env)"``), or the local capped server."""

from __future__ import annotations

import os
import sys
from urllib.parse import quote


def _from_parts(user: str, password: str, host: str, port: str, name: str) -> str:
    return f"mysql+mysqldb://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}/{name}"


def database_url() -> str:
    """An SQLAlchemy URL for the demo (mysqlclient)."""
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    if os.environ.get("DB_HOST"):
        env = os.environ
        return _from_parts(
            env.get("DB_USER", ""),
            env.get("DB_PASSWORD", ""),
            env["DB_HOST"],
            env.get("DB_PORT", "3306"),
            env.get("DB_NAME", "app"),
        )
    from pa_dbhealth import sandbox

    try:
        info = sandbox.SandboxInfo.load(sandbox.default_dir())
        if not info.is_running():
            raise sandbox.SandboxError("stopped")
    except sandbox.SandboxError:
        info = sandbox.start(sandbox.default_dir())
        print(
            f"flask_demo: started the local capped server on {info.host}:{info.port} "
            "(stop it with `python -m pa_dbhealth.sandbox stop`)",
            file=sys.stderr,
        )
    return _from_parts(info.user, info.password, info.host, str(info.port), info.database)
