"""``python -m pa_dbhealth``: the audit and the listing on a URL, as a subprocess, without
a framework; and the import of the SQLAlchemy and Flask faces where Django is not installed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from conftest import wait_until_settled

from pa_dbhealth import dburl

pytestmark = pytest.mark.matrix_once  # the same on every Django version

ROOT = Path(__file__).resolve().parent.parent


def url_of(server: Any, scheme: str = "mysql", password: str | None = None) -> str:
    secret = server.password if password is None else password
    return f"{scheme}://{server.user}:{secret}@{server.host}:{server.port}/{server.database}"


def run(*args: str, env: dict[str, str] | None = None, python: str = sys.executable) -> Any:
    return subprocess.run(
        [python, "-m", "pa_dbhealth", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize("scheme", ["mysql", "mysql+mysqldb", "mysql+pymysql"])
def test_check_on_a_url(server: Any, admin: Any, scheme: str) -> None:
    result = run("check", "--url", url_of(server, scheme), "--workers", "2")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"default: {server.flavour} ")
    assert "account cap 3 connections" in result.stdout
    assert "python -m pa_dbhealth check: 1 info (none at or above error)." in result.stdout
    assert server.password not in result.stdout + result.stderr
    wait_until_settled(admin)


def test_check_findings_exit_1_and_json(server: Any, admin: Any) -> None:
    result = run("check", "--url", url_of(server), "--workers", "4", "--format", "json")
    assert result.returncode == 1
    found = json.loads(result.stdout)["databases"]["default"]["findings"]
    e007 = next(f for f in found if f["id"] == "pa_dbhealth.E007")
    assert "4 worker(s) from --workers" in e007["message"]
    assert "--workers" in e007["hint"]
    wait_until_settled(admin)


def test_the_url_defaults_to_database_url(server: Any, admin: Any) -> None:
    result = run("connections", "--format", "json", env={"DATABASE_URL": url_of(server)})
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)["databases"]["default"]
    assert body["limit"] == 3 and body["total"] == 1
    wait_until_settled(admin)


def test_connections_kill_idle(server: Any, admin: Any, raw_connections: Any) -> None:
    (console,) = raw_connections(1)
    console.autocommit(True)
    import time

    time.sleep(1.1)
    url = url_of(server, "mysql+pymysql")
    spared = run("connections", "--url", url, "--kill-idle", "1", "--dry-run")
    assert spared.returncode == 0  # transaction unknown: spared, as the real run spares it
    assert f"{console.thread_id()} (the server does not show its transaction" in spared.stdout
    flags = ("--kill-idle", "1", "--include-transactions")
    dry = run("connections", "--url", url, *flags, "--dry-run")
    assert dry.returncode == 0
    assert f"would kill (dry run): {console.thread_id()}" in dry.stdout
    killed = run("connections", "--url", url, "--kill-idle", "1", "--include-transactions")
    assert killed.returncode == 0
    assert f"killed: {console.thread_id()}" in killed.stdout
    wait_until_settled(admin)


def test_postgresql_url(pg_server: Any, pg_admin: Any) -> None:
    url = url_of(pg_server, "postgresql")
    result = run("connections", "--url", url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("default (postgresql): 1 of 3 connections, 2 free")
    check = run(
        "check", "--url", url.replace("postgresql:", "postgresql+psycopg:"), "--workers", "1"
    )
    assert check.returncode == 0, check.stderr
    assert "idle_in_transaction_session_timeout 60 s" in check.stdout
    assert pg_server.password not in check.stdout + check.stderr


def test_an_unreachable_server(server: Any) -> None:
    url = "mysql://app:secret-word@127.0.0.1:9/app"
    check = run("check", "--url", url)
    assert check.returncode == 1
    assert "pa_dbhealth.E011: Cannot reach the database server of 'default' at 127.0.0.1:9" in (
        check.stdout
    )
    listing = run("connections", "--url", url)
    assert listing.returncode == 2
    assert listing.stderr.startswith("error: database 'default' at 127.0.0.1:9: (2002)")
    assert "secret-word" not in check.stdout + check.stderr + listing.stdout + listing.stderr


def test_a_wrong_password_is_said_without_it(server: Any) -> None:
    result = run("connections", "--url", url_of(server, password="not-the-password"))
    assert result.returncode == 2
    assert "(1045) Access denied" in result.stderr
    assert "not-the-password" not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["check"], "give --url URL or --url-file PATH, or set DATABASE_URL"),
        (["check", "--url", "mysql://h/x", "--url-file", "f"], "not allowed with argument"),
        (["connections", "--url-file", "/no/such/file"], "cannot read --url-file /no/such/file"),
        (["check", "--url", "ftp://host/x"], "unsupported URL scheme ftp://"),
        (["check", "--url", "mysql:///app"], "the URL names no host"),
        (["check", "--url", "mysql://a:b@h:99999/x"], "not a database URL"),
        (["connections", "--url", "mysql://h/x", "--dry-run"], "--dry-run goes with --kill-idle"),
        (["connections", "--url", "mysql://h/x", "--kill-idle", "inf"], "seconds must be"),
    ],
)
def test_misuse_exits_2_with_one_line(args: list[str], message: str) -> None:
    result = run(*args, env={"DATABASE_URL": ""})
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_help_has_a_line_for_every_option_and_names_the_environment() -> None:
    for action, variables in [
        ([], ("DATABASE_URL", "PA_DBHEALTH_REGISTRY_DIR")),
        (["check"], ("DATABASE_URL",)),
        (["connections"], ("DATABASE_URL", "PA_DBHEALTH_REGISTRY_DIR")),
    ]:
        result = run(*action, "--help", env={"COLUMNS": "100"})
        assert result.returncode == 0, result.stderr
        options = described_options(result.stdout)
        assert options and all(options.values()), options
        for variable in variables:
            assert re.search(rf"^  {variable}\b", result.stdout, re.MULTILINE), variable
    check = described_options(run("check", "--help").stdout)
    assert "shows in `ps`" in check["--url URL"] and "DATABASE_URL" in check["--url URL"]
    expected = {"--format", "--fail-level", "--workers", "--task-connections", "--timeout-margin"}
    assert expected <= {name.split()[0] for name in check}
    listing = described_options(run("connections", "--help").stdout)
    expected = {"--kill-idle", "--include-transactions", "--dry-run", "--watch", "--url-file"}
    assert expected <= {name.split()[0] for name in listing}


def described_options(help_text: str) -> dict[str, str]:
    """``{"--workers N": "concurrent web workers ...", ...}`` from the options section of
    argparse's help: the description follows the option on its line or on the lines below."""
    section = help_text.split("\noptions:\n", 1)[1].split("\n\n", 1)[0]
    options: dict[str, str] = {}
    name = ""
    for line in section.splitlines():
        if line.startswith("  -"):
            name, _, text = line.strip().partition("  ")
            options[name] = text.strip()
        elif name:
            options[name] = f"{options[name]} {line.strip()}".strip()
    return options


PASSWORD = "Kw9x@Vb7z/Qm3j?Hc4#Np"  # every character a URL's password must have encoded


@pytest.mark.parametrize(
    "password", ["Kw9x@Vb7z/Qm3j", "Kw9x/Qm3j", "Kw9x?Qm3j", "Kw9x#Qm3j", PASSWORD]
)
@pytest.mark.parametrize("where", ["--url", "DATABASE_URL"])
def test_a_password_that_cuts_the_url_short_gets_the_encoding_hint(
    password: str, where: str
) -> None:
    url = f"mysql://app:{password}@127.0.0.1:9/app"
    given = ("check", "--url", url) if where == "--url" else ("check",)
    result = run(*given, env={"DATABASE_URL": url})
    assert result.returncode == 2
    (line,) = [line for line in result.stderr.splitlines() if "error:" in line]
    assert "must be percent-encoded ('/' as %2F, '?' as %3F, '#' as %23, '@' as %40)" in line
    assert "getpass.getpass()" in line
    shown = result.stdout + result.stderr
    pieces = re.split(r"[@/?#]", password)
    for secret in (password, quote(password, safe=""), *pieces):
        assert secret not in shown


def test_an_at_sign_the_url_can_still_be_split_on_is_not_refused() -> None:
    """The userinfo ends at the last '@' before the path: an unencoded '@' there, or an '@' in
    a query value of a URL with a user, leaves the host right."""
    assert dburl.parse("mysql://app:p@ss@db/app").host == "db"
    assert dburl.parse("mysql://app:p@ss@db/app").password == "p@ss"
    url = dburl.parse("mysql://app:pw@db/app?init_command=SET%20@a=1")
    assert url.host == "db" and url.query == {"init_command": "SET @a=1"}


def test_an_encoded_password_read_from_a_url_file(tmp_path: Path, server: Any, admin: Any) -> None:
    admin.execute("CREATE USER 'encoded'@'%%' IDENTIFIED BY %s", [PASSWORD])
    try:
        admin.execute(f"GRANT SELECT ON `{server.database}`.* TO 'encoded'@'%'")
        url = tmp_path / "database-url"
        url.write_text(
            f"mysql://encoded:{quote(PASSWORD, safe='')}@{server.host}:{server.port}/"
            f"{server.database}\n"
        )
        url.chmod(0o600)
        result = run("connections", "--url-file", str(url), "--format", "json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["databases"]["default"]["total"] == 1
        assert PASSWORD not in result.stdout + result.stderr
    finally:
        admin.execute("DROP USER 'encoded'@'%'")


def test_an_empty_url_file_is_a_usage_error(tmp_path: Path) -> None:
    empty = tmp_path / "url"
    empty.write_text("\n")
    result = run("check", "--url-file", str(empty), env={"DATABASE_URL": ""})
    assert result.returncode == 2
    assert f"--url-file {empty} is empty: write the URL on its first line" in result.stderr


def test_parse_keeps_the_password_out_of_sight() -> None:
    url = dburl.parse("mysql+pymysql://app:p%40ss@db.example:3307/app%24db?charset=utf8mb4")
    assert (url.driver, url.host, url.port, url.password) == ("pymysql", "db.example", 3307, "p@ss")
    assert url.database == "app$db" and url.query == {"charset": "utf8mb4"}
    assert "p@ss" not in repr(url) and "p@ss" not in url.redacted()
    assert url.redacted() == "mysql://app:***@db.example:3307/app$db"


def test_without_django(tmp_path: Path, server: Any, admin: Any) -> None:
    """The SQLAlchemy and Flask faces and python -m pa_dbhealth, in a fresh virtualenv with
    pa_dbhealth installed with its sqlalchemy, flask and pymysql extras, and no Django."""
    home = tmp_path / "venv"
    venv.create(home, with_pip=True)
    python = str(home / "bin" / "python")
    pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    installed = subprocess.run(
        [*pip, f"{ROOT}[sqlalchemy,flask,pymysql]"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr
    probe = (
        "import importlib.util, sys\n"
        "assert importlib.util.find_spec('django') is None, 'Django is installed'\n"
        "import pa_dbhealth.sqlalchemy, pa_dbhealth.flask, pa_dbhealth.__main__\n"
        "from pa_dbhealth.flask import DbHealth, engine_options\n"
        "assert 'django' not in sys.modules\n"
        "print('ok')\n"
    )
    imported = subprocess.run(
        [python, "-c", probe],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert imported.stdout.strip() == "ok", imported.stderr
    result = run("check", "--url", url_of(server, "mysql"), "--workers", "2", python=python)
    assert result.returncode == 0, result.stderr  # mysql:// falls back to PyMySQL here
    wait_until_settled(admin)
