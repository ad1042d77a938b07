"""The accounts on the sandbox's server: ``app``, capped like a PythonAnywhere account, and
``admin``, uncapped, for watching from outside."""

from __future__ import annotations

from typing import Any

from pa_dbhealth.sandbox.info import SandboxInfo


def create_accounts(conn: Any, info: SandboxInfo) -> None:
    """On a new server (``conn``: root): drop the anonymous and remote root accounts, create
    the database and ``info``'s two accounts."""
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


def set_limit(conn: Any, info: SandboxInfo) -> None:
    """On a resumed server (``conn``: root): the app account's cap becomes ``info.limit``."""
    conn.cursor().execute(
        f"ALTER USER %s@'%%' WITH MAX_USER_CONNECTIONS {int(info.limit)}", [info.user]
    )
