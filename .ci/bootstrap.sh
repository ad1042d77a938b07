# Sourced by demo_project/run.sh and tests/run.sh: make this machine ready, idempotently.
#  - Debian/Ubuntu packages: python3-venv, a C compiler, Python headers, pkg-config and the
#    MariaDB client library (mysqlclient compiles against them), and mariadb-server's binaries
#    (the sandbox starts its own server from them; the system service is not started).
#  - .venv with requirements.txt and the app installed in editable mode with the extras
#    django, mysql and test.
# Without root it says exactly what to install instead.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}
VENV="$ROOT/.venv"
EXTRAS="django,mysql,test"

say() { printf '%s\n' "$*" >&2; }

missing_packages() {
    local pkgs=()
    command -v "$PYTHON" >/dev/null 2>&1 || pkgs+=(python3)
    if ! [ -x "$VENV/bin/python" ]; then
        "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1 || pkgs+=(python3-venv)
    fi
    command -v cc >/dev/null 2>&1 || pkgs+=(gcc libc6-dev)
    "$PYTHON" - >/dev/null 2>&1 <<'PY' || pkgs+=(python3-dev)
import os, sysconfig
assert os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h"))
PY
    command -v pkg-config >/dev/null 2>&1 || pkgs+=(pkg-config)
    if ! pkg-config --exists mysqlclient 2>/dev/null && ! pkg-config --exists libmariadb 2>/dev/null; then
        pkgs+=(libmariadb-dev)
    fi
    if ! PATH="$PATH:/usr/sbin:/usr/local/sbin" command -v mariadbd >/dev/null 2>&1 \
        && ! PATH="$PATH:/usr/sbin:/usr/local/sbin" command -v mysqld >/dev/null 2>&1; then
        pkgs+=(mariadb-server)
    fi
    # The suite also starts a throwaway PostgreSQL of its own from these binaries.
    if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
        pkgs+=(postgresql)
    fi
    # wrk drives the load benchmark (bench/load.py) and its smoke test.
    command -v wrk >/dev/null 2>&1 || pkgs+=(wrk)
    printf '%s\n' "${pkgs[@]}"
}

install_packages() {
    local pkgs
    mapfile -t pkgs < <(missing_packages)
    [ "${#pkgs[@]}" -eq 0 ] && return 0
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo="sudo -n"
        else
            say "pa_dbhealth: missing system packages: ${pkgs[*]}"
            say "install them with: sudo apt-get install -y ${pkgs[*]}"
            exit 1
        fi
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        say "pa_dbhealth: missing ${pkgs[*]} and this is not a Debian/Ubuntu system: install their equivalents"
        exit 1
    fi
    say "pa_dbhealth: installing ${pkgs[*]}"
    # Keep package scripts from starting a system database service: the sandbox runs its own.
    local policy=/usr/sbin/policy-rc.d added_policy=""
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null && $sudo chmod +x "$policy"
        added_policy=1
    fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
    [ -n "$added_policy" ] && $sudo rm -f "$policy"
    return 0
}

make_venv() {
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    local stamp="$VENV/.requirements.sha"
    local want
    want=$(cat "$ROOT/requirements.txt" "$ROOT/pyproject.toml" <(echo "$EXTRAS") | sha256sum | cut -d' ' -f1)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        say "pa_dbhealth: installing Python packages into .venv"
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$ROOT/requirements.txt" -e "$ROOT[$EXTRAS]"
        echo "$want" >"$stamp"
    fi
}

install_packages
make_venv
export PATH="$VENV/bin:$PATH:/usr/sbin:/usr/local/sbin"
