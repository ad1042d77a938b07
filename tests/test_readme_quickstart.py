"""The README's quick start, as a new user follows it: the lines of its first screen pasted
into a project of their own (``django-admin startproject``; a plain Flask app), against the
suite's capped server. What they are told to run must work and say the site is healthy."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import django
import pytest
from conftest import sqlalchemy_url
from processes import run

README = Path(__file__).resolve().parent.parent / "README.md"


def quick_start(face: str) -> list[str]:
    """The code blocks of the README's quick start for ``face`` (``Django`` or ``Flask``)."""
    text = README.read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    part = section.split(f"**{face}", 1)[1].split("\n**", 1)[0]
    return re.findall(r"```(?:python|sh)\n(.*?)```", part, re.DOTALL)


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without the suite's Django settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PA_DBHEALTH"))}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return {**env, **extra}


def test_the_django_quick_start(tmp_path: Path, server: Any) -> None:
    install, wiring, command = quick_start("Django")
    assert '"pa-dbhealth[django,mysql]"' in install
    settings_lines, urls_lines = wiring.split("# urls.py\n")
    assert command.split("#")[0].strip() == "python manage.py dbcheck"
    run([sys.executable, "-m", "django", "startproject", "mysite", str(tmp_path)], env=clean_env())
    database = server.database_settings(engine="django.db.backends.mysql")
    settings = tmp_path / "mysite" / "settings.py"
    settings.write_text(
        settings.read_text()
        + f"\nDATABASES = {{'default': {database!r}}}\n"  # the user's own MySQL, as before
        + settings_lines
    )
    urls = tmp_path / "mysite" / "urls.py"
    urls.write_text(urls.read_text() + urls_lines)
    env = clean_env(PA_DBHEALTH_REGISTRY_DIR=str(tmp_path / "registry"))

    out, err, code = run([sys.executable, "manage.py", "dbcheck"], env=env, cwd=tmp_path)
    assert code == 0, out + err
    assert "account cap 3 connections" in out
    assert out.splitlines()[-1].startswith("dbcheck: ")

    probe = textwrap.dedent(
        """
        import django, json
        django.setup()
        from django.db import connections
        from django.test import Client
        response = Client(HTTP_HOST="localhost").get("/dbhealth/")
        engine = connections["default"].settings_dict["ENGINE"]
        print(json.dumps([response.status_code, json.loads(response.content), engine]))
        """
    )
    env["DJANGO_SETTINGS_MODULE"] = "mysite.settings"
    out, err, code = run([sys.executable, "-c", probe], env=env, cwd=tmp_path)
    assert code == 0, out + err
    assert json.loads(out) == [200, {"status": "ok"}, "pa_dbhealth.backends.mysql"]


def test_the_django_quick_start_on_startprojects_sqlite_settings(tmp_path: Path) -> None:
    """Pasted into a fresh project whose DATABASES still name SQLite's file: one finding that
    names the keys to set, from dbcheck and from the system checks, and no traceback."""
    _, wiring, _ = quick_start("Django")
    settings_lines, _ = wiring.split("# urls.py\n")
    assert all(f"{key}=" in settings_lines for key in ("NAME", "USER", "PASSWORD", "HOST"))
    run([sys.executable, "-m", "django", "startproject", "mysite", str(tmp_path)], env=clean_env())
    settings = tmp_path / "mysite" / "settings.py"
    settings.write_text(settings.read_text() + settings_lines)
    env = clean_env(PA_DBHEALTH_REGISTRY_DIR=str(tmp_path / "registry"))
    fix = "Set DATABASES['default']['NAME'], ['USER'], ['PASSWORD'] and ['HOST'] to your MySQL"
    path = repr(str(tmp_path / "db.sqlite3"))

    out, err, code = run([sys.executable, "manage.py", "dbcheck"], env=env, cwd=tmp_path)
    assert code == 1 and "Traceback" not in out + err, out + err
    (finding,) = [line for line in out.splitlines() if "pa_dbhealth." in line]
    assert finding.strip().startswith("ERROR   pa_dbhealth.E025: DATABASES['default'] has the")
    assert f"NAME is the file path {path}, as SQLite uses" in finding
    assert f"fix: {fix}" in out

    out, err, code = run([sys.executable, "manage.py", "check"], env=env, cwd=tmp_path)
    if django.VERSION >= (6, 1):  # its model checks ask the database: the backend says E025
        assert code == 1 and "TypeError" not in err, err
        assert (
            err.strip()
            .splitlines()[-1]
            .startswith("django.core.exceptions.ImproperlyConfigured: pa_dbhealth.E025: ")
        ), err
    else:
        assert code == 1 and "Traceback" not in out + err, out + err
        assert "(pa_dbhealth.E025)" in err and f"HINT: {fix}" in err
        assert "System check identified 1 issue" in err

    # A command that connects anyway (migrate skips the checks' verdict) ends on the same
    # finding, from the backend, not on the driver's TypeError.
    out, err, code = run(
        [sys.executable, "manage.py", "migrate", "--skip-checks"], env=env, cwd=tmp_path
    )
    assert code == 1 and "TypeError" not in err, err
    assert (
        err.strip()
        .splitlines()[-1]
        .startswith(
            "django.core.exceptions.ImproperlyConfigured: pa_dbhealth.E025: DATABASES['default']"
        )
    ), err


@pytest.mark.matrix_once
def test_the_flask_quick_start(tmp_path: Path, server: Any) -> None:
    pytest.importorskip("flask_sqlalchemy")
    install, wiring, command = quick_start("Flask")
    assert '"pa-dbhealth[flask,mysql]"' in install
    assert command.strip() == "flask dbcheck"
    (tmp_path / "app.py").write_text(
        "from flask import Flask\n"
        "from flask_sqlalchemy import SQLAlchemy\n"
        "app = Flask(__name__)\n"
        f"app.config['SQLALCHEMY_DATABASE_URI'] = {sqlalchemy_url(server)!r}\n" + wiring
    )
    env = clean_env(PA_DBHEALTH_REGISTRY_DIR=str(tmp_path / "registry"))
    flask = [sys.executable, "-m", "flask", "--app", "app"]
    out, err, code = run([*flask, "dbcheck"], env=env, cwd=tmp_path)
    assert code == 0, out + err
    assert "account cap 3 connections" in out

    probe = (
        "from app import app\n"
        "response = app.test_client().get('/dbhealth/')\n"
        "print(response.status_code, response.data.decode())"
    )
    out, err, code = run([sys.executable, "-c", probe], env=env, cwd=tmp_path)
    assert code == 0, out + err
    status, body = out.split(" ", 1)
    assert (status, json.loads(body)) == ("200", {"status": "ok"})


def test_the_try_it_commands_are_the_set_up_scripts() -> None:
    """The two commands the first section gives for a fresh Debian machine exist as named."""
    section = README.read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^bash (\S+)", section, re.MULTILINE)
    assert commands == ["demo_project/run.sh", "tests/run.sh"]
    for script in commands:
        assert (README.parent / script).is_file()
        subprocess.run(["bash", "-n", str(README.parent / script)], check=True)
