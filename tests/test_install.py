"""The suite tests the package as a user installs it (tox: ``pip install .``), not the tree,
and the installed metadata says what the matrix tests: this env's Python and Django."""

from __future__ import annotations

import os
import re
import sys
from importlib import metadata
from pathlib import Path

import django
import pytest
from conftest import expect_installed
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

import pa_dbhealth

pytestmark = pytest.mark.skipif(
    not expect_installed(),
    reason="only under tox, which installs the package with pip into a fresh virtualenv",
)


def requirements(extra: str | None) -> list[Requirement]:
    """The distribution's requirements for `extra` (None: the base install)."""
    found = [Requirement(line) for line in metadata.requires("pa-dbhealth") or []]
    if extra is None:
        return [req for req in found if req.marker is None]
    return [req for req in found if req.marker and req.marker.evaluate({"extra": extra})]


def test_the_installed_package_is_the_one_tested() -> None:
    location = Path(pa_dbhealth.__file__).resolve()
    assert "site-packages" in location.parts
    assert (location.parent / "py.typed").exists()
    assert (location.parent / "management" / "commands" / "dbcheck.py").exists()


def test_the_metadata_claims_this_python_and_this_django() -> None:
    meta = metadata.metadata("pa-dbhealth")
    classifiers = meta.get_all("Classifier") or []
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert f"Programming Language :: Python :: {python}" in classifiers
    assert Version(python) in SpecifierSet(meta["Requires-Python"])
    django_minor = f"{django.VERSION[0]}.{django.VERSION[1]}"
    assert f"Framework :: Django :: {django_minor}" in classifiers
    (spec,) = [req.specifier for req in requirements("django") if req.name == "Django"]
    assert Version(django.__version__) in spec


def test_the_base_install_brings_no_framework_and_no_driver() -> None:
    assert requirements(None) == []
    flask = {req.name for req in requirements("flask")}
    assert flask == {"Flask", "Flask-SQLAlchemy", "SQLAlchemy"}


def test_the_license_is_declared_and_shipped() -> None:
    meta = metadata.metadata("pa-dbhealth")
    assert meta["License-Expression"] == "MIT"
    shipped = [f for f in metadata.files("pa-dbhealth") or [] if f.name == "LICENSE"]
    assert len(shipped) == 1
    assert "pa_dbhealth contributors" in shipped[0].read_text()


def test_the_env_runs_the_django_its_name_says() -> None:
    """A dependency that needs a newer Django (django-q2 1.11 needs 5.2) must not upgrade
    the env's Django behind its name: the matrix would test one version twice."""
    env = os.environ.get("TOX_ENV_NAME", "")
    match = re.search(r"django(\d)(\d+)", env)
    if match is None:
        pytest.skip("only under tox, in an env named after its Django")
    assert django.VERSION[:2] == (int(match.group(1)), int(match.group(2)))
