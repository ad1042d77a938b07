# Make this machine ready for one of the project's commands, idempotently. Sourced:
#   source .ci/bootstrap.sh demo    # by demo_project/run.sh
#   source .ci/bootstrap.sh tests   # by tests/run.sh (the default)
# 1. Debian/Ubuntu packages that command needs and the machine lacks: installed with apt-get
#    as root (or password-less sudo); otherwise it names them and how to install them, and
#    fails. Package scripts are kept from starting system database services: the project
#    starts servers of its own from the binaries.
# 2. .venv: requirements.txt and the app in editable mode with the extras django, mysql and
#    test; reinstalled only when requirements.txt or pyproject.toml change.
# Nothing missing: it prints nothing, calls no apt-get, and takes well under a second.

PA_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}
VENV="$PA_ROOT/.venv"
PA_VENV_EXTRAS="django,mysql,test"

_pa_say() { printf 'pa_dbhealth: %s\n' "$*" >&2; }

# Binaries in /usr/sbin (mariadbd) are not on a normal user's PATH. Bash's `command -v` also
# names a file that is there but not executable: only an executable one counts.
_pa_have() {
    local path
    path=$(PATH="$PATH:/usr/sbin:/usr/local/sbin" command -v "$1") && [ -x "$path" ]
}

# The Debian packages that `$1` (demo or tests) needs and this machine lacks, one a line.
_pa_missing_packages() {
    local pkgs=()
    # .venv: Python with venv; mysqlclient and uWSGI compile against the MariaDB client library.
    _pa_have "$PYTHON" || pkgs+=(python3)
    if ! [ -x "$VENV/bin/python" ]; then
        "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1 || pkgs+=(python3-venv)
    fi
    _pa_have cc || pkgs+=(gcc libc6-dev)
    "$PYTHON" -c 'import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
        >/dev/null 2>&1 || pkgs+=(python3-dev)
    _pa_have pkg-config || pkgs+=(pkg-config)
    pkg-config --exists mysqlclient 2>/dev/null || pkg-config --exists libmariadb 2>/dev/null \
        || pkgs+=(libmariadb-dev)
    # The local capped server (pa_dbhealth.sandbox) runs mariadb-server's binaries.
    _pa_have mariadbd || _pa_have mysqld || pkgs+=(mariadb-server)
    if [ "$1" = tests ]; then
        # A throwaway PostgreSQL (tests/pgserver.py) and a PgBouncer in front of it
        # (tests/pgbouncer.py), the load benchmark's client and its instruction count
        # (valgrind), the browser tests' Chromium and its driver, the job-runner tests' Redis.
        _pa_have initdb || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null \
            || pkgs+=(postgresql)
        _pa_have pgbouncer || pkgs+=(pgbouncer)
        _pa_have wrk || pkgs+=(wrk)
        _pa_have valgrind || pkgs+=(valgrind)
        _pa_have chromium || _pa_have chromium-browser || pkgs+=(chromium)
        _pa_have chromedriver || pkgs+=(chromium-driver)
        _pa_have redis-server || pkgs+=(redis-server)
    fi
    [ "${#pkgs[@]}" -eq 0 ] || printf '%s\n' "${pkgs[@]}"
}

_pa_install_packages() {
    local what=$1 pkgs
    mapfile -t pkgs < <(_pa_missing_packages "$what")
    [ "${#pkgs[@]}" -eq 0 ] && return 0
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if _pa_have sudo && sudo -n true 2>/dev/null; then
            sudo="sudo -n"
        else
            _pa_say "missing system packages for the ${what}: ${pkgs[*]}"
            _pa_say "as root, run: apt-get install -y --no-install-recommends ${pkgs[*]}"
            _pa_say "then run this command again"
            return 1
        fi
    fi
    if ! _pa_have apt-get; then
        _pa_say "missing ${pkgs[*]} (Debian/Ubuntu names) and there is no apt-get: install their equivalents"
        return 1
    fi
    _pa_say "installing ${pkgs[*]}"
    # Keep package scripts from starting a system database service: the project runs its own.
    local policy=/usr/sbin/policy-rc.d added_policy="" rc=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null && $sudo chmod +x "$policy"
        added_policy=1
    fi
    $sudo apt-get update -qq \
        && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
            "${pkgs[@]}" >/dev/null \
        || rc=$?
    [ -z "$added_policy" ] || $sudo rm -f "$policy"
    [ "$rc" -eq 0 ] || { _pa_say "apt-get failed (exit $rc) installing ${pkgs[*]}"; return 1; }
    mapfile -t pkgs < <(_pa_missing_packages "$what")
    if [ "${#pkgs[@]}" -ne 0 ]; then
        _pa_say "still missing after apt-get install: ${pkgs[*]}"
        return 1
    fi
}

_pa_make_venv() {
    local stamp="$VENV/.requirements.sha" want
    want=$(cat "$PA_ROOT/requirements.txt" "$PA_ROOT/pyproject.toml" <(echo "$PA_VENV_EXTRAS") \
        | sha256sum | cut -d' ' -f1)
    [ -x "$VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && return 0
    _pa_say "installing Python packages into .venv"
    if ! [ -x "$VENV/bin/python" ]; then
        "$PYTHON" -m venv "$VENV" || return 1
    fi
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip \
        && "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
            -r "$PA_ROOT/requirements.txt" -e "$PA_ROOT[$PA_VENV_EXTRAS]" \
        || return 1
    echo "$want" >"$stamp"
}

case "${1:-}" in demo) _pa_for=demo ;; *) _pa_for=tests ;; esac
_pa_install_packages "$_pa_for" && _pa_make_venv || return 1
case ":$PATH:" in
*":$VENV/bin:"*) ;;
*) export PATH="$VENV/bin:$PATH:/usr/sbin:/usr/local/sbin" ;;
esac
