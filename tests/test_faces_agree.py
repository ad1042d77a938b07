"""The faces judge alike: for the same server, settings and workers, ``manage.py dbcheck``,
``flask dbcheck`` and ``python -m pa_dbhealth check`` give the same findings, each fix in
its own face's words (Django's QuerySet, Flask-SQLAlchemy's paginate, plain DB-API)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import run_command, sqlalchemy_url
from django.test import override_settings
from test_main import run, url_of

pytest.importorskip("flask_sqlalchemy")

from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from pa_dbhealth.flask import DbHealth

WORKERS = 2
SERVER_IDS = ("pa_dbhealth.I012", "pa_dbhealth.W014")  # what the server itself shows
PAGING = {
    "django": "QuerySet slicing",
    "flask": "db.paginate(",
    "command line": "cursor.fetchmany(n)",
}


def findings_of(text: str) -> dict[str, dict[str, Any]]:
    body = json.loads(text)["databases"]
    (only,) = body.values()
    return {f["id"]: f for f in only["findings"]}


def django_findings() -> dict[str, dict[str, Any]]:
    with override_settings(PA_DBHEALTH={"WORKERS": WORKERS}):
        out, _err, _ = run_command("dbcheck", "--database", "default", "--format", "json")
    return findings_of(out)


def flask_findings(server: Any) -> dict[str, dict[str, Any]]:
    app = Flask("faces_agree")
    app.config["SQLALCHEMY_DATABASE_URI"] = sqlalchemy_url(server)
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"pool_size": 1, "max_overflow": 0}
    app.config["PA_DBHEALTH"] = {"WORKERS": WORKERS}
    db = SQLAlchemy(app)
    DbHealth(app, db=db)
    try:
        result = app.test_cli_runner().invoke(args=["dbcheck", "--format", "json"])
        return findings_of(result.stdout)
    finally:
        with app.app_context():
            db.engine.dispose()


def command_line_findings(server: Any) -> dict[str, dict[str, Any]]:
    found = run("check", "--url", url_of(server), "--workers", str(WORKERS), "--format", "json")
    return findings_of(found.stdout)


@pytest.mark.usefixtures("unblocked_db")
def test_the_server_is_judged_alike_in_each_faces_words(server: Any) -> None:
    faces = {
        "django": django_findings(),
        "flask": flask_findings(server),
        "command line": command_line_findings(server),
    }
    for face, found in faces.items():
        shown = {i for i in found if i in SERVER_IDS}
        assert shown == {"pa_dbhealth.I012"}, (face, sorted(found))
        assert PAGING[face] in found["pa_dbhealth.I012"]["hint"], (face, found)
        others = set(PAGING.values()) - {PAGING[face]}
        assert not any(words in found["pa_dbhealth.I012"]["hint"] for words in others), face
    messages = {found["pa_dbhealth.I012"]["message"] for found in faces.values()}
    assert len(messages) == 1  # the same fact, the same words; only the fix is the face's
