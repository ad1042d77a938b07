#!/usr/bin/env bash
# The Flask demo: set up, start the local capped server, create the table, audit, and serve.
#   bash flask_demo/run.sh            # ... and serve on http://127.0.0.1:5000/ until Ctrl-C
#   bash flask_demo/run.sh --no-serve # stop after the audit
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/bootstrap.sh demo
export FLASK_APP=flask_demo.app

python -m pa_dbhealth.sandbox status >/dev/null 2>&1 || python -m pa_dbhealth.sandbox start >/dev/null
eval "$(python -m pa_dbhealth.sandbox env)"
flask seed
flask dbcheck || true  # findings are the point of the demo: show them, carry on

if [ "${1:-}" = "--no-serve" ]; then
    echo "flask_demo: the local server keeps running; stop it with: .venv/bin/python -m pa_dbhealth.sandbox stop"
    exit 0
fi
trap 'python -m pa_dbhealth.sandbox stop' EXIT
echo "flask_demo: serving on http://127.0.0.1:5000/ (Ctrl-C stops the site and the local server)"
flask run --host 127.0.0.1 --port 5000
