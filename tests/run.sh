#!/usr/bin/env bash
# The test command: lint, type-check, then the suite on Django 4.2 and 5.2, each with
# pa_dbhealth installed by `pip install .` into a fresh virtualenv (tox), against the
# suite's own capped MariaDB/MySQL server. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/bootstrap.sh

echo "== ruff"
ruff check .
ruff format --check .
echo "== mypy"
PYTHONPATH=tests mypy pa_dbhealth
echo "== tests (tox: Django 4.2 and 5.2)"
tox run -e django42,django52 -- "$@"
