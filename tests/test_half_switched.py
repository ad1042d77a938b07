"""A DATABASES entry half switched to MySQL: which settings earn E025 or W026, and which keys
each names. The checks and dbcheck that report them are tested in test_dbcheck.py and
test_readme_quickstart.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pa_dbhealth.half_switched import half_switched

ENGINE = "pa_dbhealth.backends.mysql"
MYSQL = {"ENGINE": ENGINE, "NAME": "app", "USER": "app", "PASSWORD": "pw", "HOST": "db"}


@pytest.mark.parametrize(
    ("changed", "problem", "keys"),
    [
        (
            {"NAME": Path("/site/db.sqlite3"), "USER": "", "PASSWORD": "", "HOST": ""},
            "NAME is the file path '/site/db.sqlite3', as SQLite uses, and USER, PASSWORD and "
            "HOST are not set",
            "['NAME'], ['USER'], ['PASSWORD'] and ['HOST']",
        ),
        ({"NAME": "db.sqlite3"}, "NAME is the file path 'db.sqlite3', as SQLite uses", "['NAME']"),
        ({"NAME": "", "HOST": ""}, "NAME is empty, and HOST is not set", "['NAME'] and ['HOST']"),
        (
            {"NAME": Path("/x/db"), "USER": "", "OPTIONS": {"read_default_file": "/my.cnf"}},
            "NAME is the file path '/x/db', as SQLite uses",
            "['NAME']",
        ),
    ],
)
def test_a_name_that_cannot_be_a_mysql_database_is_an_error(
    changed: dict[str, Any], problem: str, keys: str
) -> None:
    found = half_switched("default", {**MYSQL, **changed}, "mysql")
    assert found is not None and found.id == "pa_dbhealth.E025"
    assert found.message == (
        f"DATABASES['default'] has the MySQL ENGINE {ENGINE!r} but {problem}: the entry is half "
        "switched to MySQL, and no connection can be opened with it."
    )
    assert found.hint.startswith(f"Set DATABASES['default']{keys} to your MySQL database's (")
    assert "'<username>.mysql.pythonanywhere-services.com'" in found.hint


@pytest.mark.parametrize(
    ("changed", "missing", "defaults"),
    [
        ({"HOST": ""}, "HOST", "the local socket for HOST"),
        ({"USER": None}, "USER", "the login user for USER"),
        (
            {"HOST": "", "USER": ""},
            "HOST and USER",
            "the local socket for HOST and the login user for USER",
        ),
    ],
)
def test_no_host_or_no_user_is_a_warning(
    changed: dict[str, Any], missing: str, defaults: str
) -> None:
    found = half_switched("other", {**MYSQL, **changed}, "mysql")
    assert found is not None and found.id == "pa_dbhealth.W026"
    assert found.message == (
        f"DATABASES['other'] has the MySQL ENGINE {ENGINE!r} and no {missing}: the MySQL client "
        f"then uses {defaults}, which only suits a server on this machine."
    )
    keys = missing.replace(" and ", "'] and ['")
    assert found.hint.startswith(f"Set DATABASES['other']['{keys}'] (on PythonAnywhere")


@pytest.mark.parametrize(
    ("changed", "vendor"),
    [
        ({}, "mysql"),
        ({"PASSWORD": ""}, "mysql"),  # a socket-authenticated account needs none
        ({"HOST": "", "OPTIONS": {"unix_socket": "/run/mysqld/mysqld.sock"}}, "mysql"),
        ({"NAME": "", "USER": "", "OPTIONS": {"database": "app", "user": "app"}}, "mysql"),
        (
            {"NAME": "", "USER": "", "HOST": "", "OPTIONS": {"read_default_file": "~/.my.cnf"}},
            "mysql",
        ),
        ({"NAME": Path("/site/db.sqlite3"), "HOST": ""}, "sqlite"),
        ({"NAME": "", "HOST": ""}, "postgresql"),
    ],
)
def test_complete_entries_and_other_vendors_pass(changed: dict[str, Any], vendor: str) -> None:
    assert half_switched("default", {**MYSQL, **changed}, vendor) is None
