#!/usr/bin/env bash
# The test command: lint, then every env of tox.ini (the suite on each supported Python and
# Django, with pa_dbhealth installed by pip from its wheel into a fresh virtualenv; mypy
# against the newest Django). Extra arguments go to pytest.
# An interpreter this machine lacks is named with how to get it, and the rest runs; under
# CI (CI set) a missing one fails the run, so the matrix is never silently short.
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/bootstrap.sh tests

echo "== ruff"
ruff check .
ruff format --check .

# pyenv's shims answer only for the versions `pyenv global` names: look in pyenv's
# versions folder too, and show tox each interpreter found under its plain name.
find_python() { # 3.12 -> a working python3.12 that can build extensions, or nothing
    local version=$1 candidate
    for candidate in $(type -ap "python$version") \
        $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}/versions/$version".*/bin/"python$version" 2>/dev/null | sort -rV); do
        "$candidate" -c 'import os, sys, sysconfig, venv
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
            >/dev/null 2>&1 && { echo "$candidate"; return; }
    done
}

interpreters=.tox/interpreters
rm -rf "$interpreters" && mkdir -p "$interpreters"
declare -A usable=()
envs=() missing=()
for env in $(tox list --no-desc -q); do
    digits=${env%%-*}                  # py312-django60 -> py312
    version=${digits:2:1}.${digits:3} # -> 3.12
    if [ -z "${usable[$version]:-}" ]; then
        usable[$version]=no
        if python=$(find_python "$version") && [ -n "$python" ]; then
            ln -s "$python" "$interpreters/python$version"
            usable[$version]=yes
        else
            echo "pa_dbhealth: no usable python$version (with its headers) on this machine:" \
                "install it, e.g. \`pyenv install $version\` or your distribution's" \
                "python$version and python$version-dev (Ubuntu: the deadsnakes PPA)" >&2
        fi
    fi
    if [ "${usable[$version]}" = yes ]; then envs+=("$env"); else missing+=("$env"); fi
done
if [ "${#envs[@]}" -eq 0 ]; then
    echo "pa_dbhealth: none of tox.ini's interpreters is on this machine" >&2
    exit 1
fi
export PATH="$PWD/$interpreters:$PATH"

# Tests marked matrix_once (the sandbox, the set-up scripts, the faces without Django: the
# same on every Django version, and half the suite's time) run in the newest env found.
for env in "${envs[@]}"; do
    case "$env" in *-django*) export PA_DBHEALTH_MATRIX_ONCE_IN="$env" ;; esac
done

# One env after another: `tox run-parallel -p 2` took 8.5-9.5 min instead of 13.5-15 here
# (2 cores), but each of its runs failed timing-sensitive tests that pass one at a time.
echo "== tox: ${envs[*]}"
status=0
tox run -e "$(IFS=,; echo "${envs[*]}")" -- "$@" || status=$?

if [ "${#missing[@]}" -ne 0 ]; then
    echo "pa_dbhealth: NOT RUN (no interpreter): ${missing[*]}" >&2
    [ -z "${CI:-}" ] || status=1
fi
exit "$status"
