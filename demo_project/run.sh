#!/usr/bin/env bash
# The demo: set up, start the local capped server, migrate, audit, and serve.
#   bash demo_project/run.sh            # ... and serve on http://127.0.0.1:8000/ until Ctrl-C
#   bash demo_project/run.sh --no-serve # stop after the audit (what CI runs)
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/bootstrap.sh demo

python -m pa_dbhealth.sandbox status >/dev/null 2>&1 || python -m pa_dbhealth.sandbox start >/dev/null
eval "$(python -m pa_dbhealth.sandbox env)"
python manage.py migrate --verbosity 0
python manage.py seed_emissores
python manage.py dbcheck || true  # findings are the point of the demo: show them, carry on

if [ "${1:-}" = "--no-serve" ]; then
    echo "demo: the local server keeps running; stop it with: .venv/bin/python -m pa_dbhealth.sandbox stop"
    exit 0
fi
trap 'python -m pa_dbhealth.sandbox stop' EXIT
echo "demo: serving on http://127.0.0.1:8000/ (Ctrl-C stops the site and the local server)"
python manage.py runserver 127.0.0.1:8000
