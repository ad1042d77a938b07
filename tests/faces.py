"""The two faces a scenario test runs through, as the ``face`` fixture's params.

A rule written once in the core is seen through two faces: the Django one (the retrying
backend, the middleware, ``manage.py``) and the Flask/SQLAlchemy one (``install()``,
``DbHealth``, ``flask``). A scenario module takes the ``face`` fixture (``conftest.py``) and
runs once per face, so a rule cannot pass in one and fail in the other. The Flask face does
not depend on Django's version: under the test matrix it runs in one env (``matrix_once``).
"""

from __future__ import annotations

import pytest

DJANGO = "django"
FLASK = "flask"

FACES = [
    pytest.param(DJANGO, id=DJANGO),
    pytest.param(FLASK, id=FLASK, marks=pytest.mark.matrix_once),
]
