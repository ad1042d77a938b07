"""The audit as Django system checks: same ids as dbcheck, only where the database is asked for."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.checks import Tags, registry, run_checks
from django.core.management import call_command
from django.db import connections
from django.test import override_settings

from pa_dbhealth.core import findings

mysql = pytest.mark.django_db(transaction=True)
# The static checks alone: since Django 6.1 run_checks() gives every check the aliases, and
# Django's model checks ask a MySQL server about its data types.
STATIC: list[str] = []


def dbcheck_ids(alias: str = "default") -> list[str]:
    out = StringIO()
    call_command("dbcheck", "--database", alias, "--format", "json", stdout=out)
    return sorted(f["id"] for f in json.loads(out.getvalue())["databases"][alias]["findings"])


def check_ids(alias: str = "default") -> list[str]:
    messages = run_checks(tags=[Tags.database], databases=[alias])
    return sorted(m.id or "" for m in messages if (m.id or "").startswith("pa_dbhealth."))


@mysql
def test_system_checks_say_what_dbcheck_says() -> None:
    with override_settings(PA_DBHEALTH={"WORKERS": 3}):
        assert check_ids() == dbcheck_ids()
        assert "pa_dbhealth.W008" in check_ids()
    out, err = StringIO(), StringIO()
    with override_settings(PA_DBHEALTH={"WORKERS": 3}):
        call_command("check", "--database", "default", stdout=out, stderr=err)
    assert "(pa_dbhealth.W008)" in err.getvalue()
    assert "HINT: Leave one connection free" in err.getvalue()


@mysql
def test_levels_are_the_same_in_both() -> None:
    messages = run_checks(tags=[Tags.database], databases=["default"])
    out = StringIO()
    call_command("dbcheck", "--database", "default", "--format", "json", stdout=out)
    levels = {
        f["id"]: f["level"] for f in json.loads(out.getvalue())["databases"]["default"]["findings"]
    }
    for message in messages:
        if message.id in levels:
            assert findings.Level(message.level).label == levels[message.id]


def test_plain_check_and_runserver_checks_do_not_touch_the_database() -> None:
    # Without databases (check, runserver, every other command) the audit is not run, so a
    # site whose database is down still starts; pytest-django would refuse any connection here.
    # (Django 6.1 hands every static check the aliases and its own model checks then ask the
    # server; databases=[] keeps Django's checks off it, pa_dbhealth's are the same either way.)
    messages = run_checks(include_deployment_checks=True, databases=STATIC)
    assert [m.id for m in messages if (m.id or "").startswith("pa_dbhealth.")] == []
    assert connections["default"].connection is None


def test_the_database_check_is_tagged_database() -> None:
    from pa_dbhealth.checks import check_databases, check_settings

    assert Tags.database in check_databases.tags  # type: ignore[attr-defined]
    assert Tags.database not in getattr(check_settings, "tags", ())
    assert check_settings in registry.registry.get_checks()
    assert check_databases(databases=None) == []


def test_malformed_settings_is_an_untagged_error() -> None:
    with override_settings(PA_DBHEALTH={"WORKER": 2}):
        messages = run_checks(databases=STATIC)
    (message,) = [m for m in messages if m.id == "pa_dbhealth.E002"]
    assert message.hint == "Did you mean 'WORKERS'?"


def test_finding_ids_are_unique_and_match_their_level() -> None:
    import inspect

    made = []
    for name, function in inspect.getmembers(findings, inspect.isfunction):
        if not function.__module__.startswith(f"{findings.__name__}.") or not name.islower():
            continue
        if inspect.signature(function).return_annotation not in ("Finding", findings.Finding):
            continue
        parameters = inspect.signature(function).parameters
        arguments = {p: 1 if p in NUMBERS else "x" for p in parameters}
        made.append(function(**arguments))
    numbers = [f.id for f in made]
    assert len(made) == 33
    assert len(numbers) == len(set(numbers))
    assert len({i[13:] for i in numbers}) == len(numbers)  # a number is never reused across levels
    for finding in made:
        assert finding.id[12] == finding.level.name[0]
        assert finding.message and finding.hint


NUMBERS = {
    "timeout",
    "need",
    "cap",
    "size",
    "overflow",
    "recycle",
    "seconds",
    "conn_id",
    "idle",
    "margin",
    "limit",
}
