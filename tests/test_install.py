"""The suite tests the package as a user installs it (tox: ``pip install .``), not the tree."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import expect_installed

import pa_dbhealth


def test_the_installed_package_is_the_one_tested() -> None:
    if not expect_installed():
        pytest.skip("only under tox, which installs the package with pip into a fresh virtualenv")
    location = Path(pa_dbhealth.__file__).resolve()
    assert "site-packages" in location.parts
    assert (location.parent / "py.typed").exists()
    assert (location.parent / "management" / "commands" / "dbcheck.py").exists()
