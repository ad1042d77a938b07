"""What a sandbox is: where its server listens, its accounts, and its state file."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

STATE_FILE = "sandbox.json"


class SandboxError(Exception):
    """A problem the user can fix, said in one line."""


@dataclass
class SandboxInfo:
    """Where a sandbox's server is and how to log in to it."""

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

    @property
    def data_dir(self) -> Path:
        return Path(self.base_dir) / "data"

    def env(self) -> dict[str, str]:
        """Where the server is and how to log in, as environment variables for the demo
        project and your own settings. No ENGINE: which backend talks to the server is the
        site's choice (the demo's is ``pa_dbhealth.backends.mysql``), not the server's."""
        return {
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
        """Whether the recorded pid is this sandbox's server: a MariaDB/MySQL server
        process on this sandbox's data directory (not whatever reuses the pid now)."""
        from pa_dbhealth.sandbox.process import is_server

        return is_server(self.pid, self.data_dir)

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
