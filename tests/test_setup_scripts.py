"""The set-up script both README commands source (.ci/bootstrap.sh), run for real.

Each test runs it in a copy of the files it reads, on this machine as it is: as root and as
a user without sudo (``nobody``), with everything installed (the test command installed it),
and with packages taken away in a private mount namespace (``/dev/null`` bound over their
binaries). ``apt-get`` and ``sudo`` on the script's PATH, and the copy's ``.venv/bin/python``,
are scripts that record being called: nothing is installed on the machine.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.matrix_once  # the same on every Django version

ROOT = Path(__file__).resolve().parents[1]
USER_PATH = "/usr/local/bin:/usr/bin:/bin"  # a normal user's: no /usr/sbin
IS_ROOT = os.geteuid() == 0
RUNUSER = shutil.which("runuser", path=f"{os.environ['PATH']}:/usr/sbin:/sbin") or "runuser"
needs_root = pytest.mark.skipif(not IS_ROOT, reason="switches user and mounts: needs root")

RECORDER = """#!/bin/sh
echo "$(basename "$0") $*" >>{log}
{then}
"""


@dataclass
class Tree:
    """A copy of what the script reads, a fake .venv, and the recorders' log."""

    path: Path
    fakes: Path
    log: Path

    def calls(self) -> list[str]:
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        self.log.unlink(missing_ok=True)
        return lines

    def fake(self, path: Path, then: str = "exit 0") -> None:
        path.write_text(RECORDER.format(log=shlex.quote(str(self.log)), then=then))
        path.chmod(0o755)


@pytest.fixture
def tree() -> Iterator[Tree]:
    # Not tmp_path: pytest's folder is closed to other users.
    base = Path(tempfile.mkdtemp(prefix="pa_dbhealth-bootstrap-"))
    base.chmod(0o755)
    tree = Tree(path=base / "repo", fakes=base / "fakes", log=base / "calls.log")
    for name in (".ci/bootstrap.sh", "requirements.txt", "pyproject.toml"):
        (tree.path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tree.path / name)
    (tree.path / ".venv" / "bin").mkdir(parents=True)
    tree.fake(tree.path / ".venv" / "bin" / "python")
    tree.fakes.mkdir()
    tree.fake(tree.fakes / "apt-get")
    tree.fake(tree.fakes / "sudo", then='echo "sudo: a password is required" >&2; exit 1')
    if IS_ROOT:
        for path in [base, *base.rglob("*")]:
            os.chown(path, 65534, 65534, follow_symlinks=False)  # nobody
    yield tree
    shutil.rmtree(base)


def bootstrap(
    tree: Tree, what: str, *, user: str | None = None, hide: Sequence[str] = ()
) -> tuple[str, str, int]:
    """Source the script for `what` (demo, tests); return (out, err, returncode)."""
    command = ["bash", "-c", f"source .ci/bootstrap.sh {what}"]
    path = f"{tree.fakes}:{USER_PATH if user else os.environ['PATH']}"
    if user:
        command = [RUNUSER, "-u", user, "--", *command]
    if hide:
        command = in_namespace(tree, hide, command)
    env = {"PATH": path, "HOME": str(tree.path), "LANG": "C.UTF-8"}
    done = subprocess.run(command, cwd=tree.path, env=env, capture_output=True, text=True)
    return done.stdout, done.stderr, done.returncode


def in_namespace(tree: Tree, hide: Sequence[str], command: list[str]) -> list[str]:
    """`command` in a private mount namespace where the binaries `hide` are not executable and
    /usr/sbin is a writable overlay without policy-rc.d (checked to be gone afterwards)."""
    layer = tree.path.parent / "overlay"
    (layer / "upper").mkdir(parents=True, exist_ok=True)
    (layer / "work").mkdir(exist_ok=True)
    script = [f"mount --bind /dev/null {shlex.quote(binary)}" for binary in hide]
    script += [
        f"mount -t overlay overlay -o lowerdir=/usr/sbin,upperdir={layer}/upper,"
        f"workdir={layer}/work /usr/sbin",
        "rm -f /usr/sbin/policy-rc.d",
        '"$@"; status=$?',
        f'[ ! -e /usr/sbin/policy-rc.d ] || echo "policy-rc.d left behind" >>{tree.log}',
        'exit "$status"',
    ]
    return ["unshare", "--mount", "sh", "-c", "\n".join(script), "sh", *command]


def installed(*names: str) -> list[str]:
    paths = [shutil.which(name) for name in names]
    assert all(paths), f"the test command installs {names}: run `bash tests/run.sh` once"
    return [os.path.realpath(path) for path in paths if path]


def test_the_venv_is_installed_once_then_again_when_requirements_change(tree: Tree) -> None:
    pip = "python -m pip install -q --disable-pip-version-check"
    first = [
        f"{pip} --upgrade pip",
        f"{pip} -r {tree.path}/requirements.txt -e {tree.path}[django,mysql,test]",
    ]
    installing = "pa_dbhealth: installing Python packages into .venv\n"
    assert bootstrap(tree, "tests") == ("", installing, 0)
    assert tree.calls() == first
    assert bootstrap(tree, "tests") == ("", "", 0)
    assert tree.calls() == []
    with (tree.path / "requirements.txt").open("a") as requirements:
        requirements.write("# changed\n")
    assert bootstrap(tree, "demo") == ("", installing, 0)
    assert tree.calls() == first


@pytest.mark.parametrize("user", [None, pytest.param("nobody", marks=needs_root)])
@pytest.mark.parametrize("what", ["demo", "tests"])
def test_nothing_missing_is_silent_and_installs_nothing(
    tree: Tree, what: str, user: str | None
) -> None:
    """As the user running the suite (root under CI) and as one without sudo."""
    bootstrap(tree, what)  # the .venv's first install
    tree.calls()
    assert bootstrap(tree, what, user=user) == ("", "", 0)
    assert tree.calls() == []  # no apt-get, no sudo, no pip


@needs_root
def test_a_user_without_sudo_is_told_exactly_what_is_missing(tree: Tree) -> None:
    hide = installed("wrk", "chromedriver")
    out, err, status = bootstrap(tree, "tests", user="nobody", hide=hide)
    assert (out, status) == ("", 1)
    assert err.splitlines() == [
        "pa_dbhealth: missing system packages for the tests: wrk chromium-driver",
        "pa_dbhealth: as root, run: apt-get install -y --no-install-recommends wrk chromium-driver",
        "pa_dbhealth: then run this command again",
    ]
    assert tree.calls() == ["sudo -n true"]
    # The demo needs neither.
    assert bootstrap(tree, "demo", user="nobody", hide=hide) == (
        "",
        "pa_dbhealth: installing Python packages into .venv\n",
        0,
    )


@needs_root
def test_root_installs_exactly_what_is_missing(tree: Tree) -> None:
    hide = installed("redis-server", "chromium")
    # This apt-get "installs" by making the hidden binaries executable again.
    unhide = " ".join(shlex.quote(binary) for binary in hide)
    tree.fake(
        tree.fakes / "apt-get",
        then='[ -e /usr/sbin/policy-rc.d ] && echo "policy-rc.d in place" >>'
        f'{shlex.quote(str(tree.log))}\n[ "$1" != install ] || umount {unhide}',
    )
    out, err, status = bootstrap(tree, "tests", hide=hide)
    assert (out, status) == ("", 0)
    assert err.splitlines() == [
        "pa_dbhealth: installing chromium redis-server",
        "pa_dbhealth: installing Python packages into .venv",
    ]
    calls = tree.calls()
    assert calls[:4] == [
        "apt-get update -qq",
        "policy-rc.d in place",  # no system service starts during the install
        "apt-get install -y -qq --no-install-recommends chromium redis-server",
        "policy-rc.d in place",
    ]
    assert [call.split()[0] for call in calls[4:]] == ["python", "python"]  # and removed again


@needs_root
def test_root_fails_when_apt_get_leaves_a_package_missing(tree: Tree) -> None:
    hide = installed("wrk")
    out, err, status = bootstrap(tree, "tests", hide=hide)
    assert (out, status) == ("", 1)
    assert err.splitlines() == [
        "pa_dbhealth: installing wrk",
        "pa_dbhealth: still missing after apt-get install: wrk",
    ]
    assert tree.calls() == [
        "apt-get update -qq",
        "apt-get install -y -qq --no-install-recommends wrk",
    ]
