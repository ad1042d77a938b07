"""The demo project is wired with everything pa_dbhealth offers, its MySQL backend included."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from processes import Finished, run

from pa_dbhealth import sandbox

ROOT = Path(__file__).resolve().parent.parent
SHOW_ENGINE = (
    "from django.db import connections; db = connections['default']; db.ensure_connection(); "
    "print(db.settings_dict['ENGINE'], type(db).__module__)"
)

pytestmark = pytest.mark.skipif(
    not (ROOT / "demo_project").is_dir(), reason="the demo is not part of an installed package"
)


def demo_shell(env: dict[str, str]) -> Finished:
    """``manage.py shell -c SHOW_ENGINE`` in the demo, with exactly ``env``'s DB_* variables."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "DJANGO_"))}
    clean.pop("PYTHONPATH", None)
    argv = [sys.executable, "manage.py", "shell", "--verbosity", "0", "-c", SHOW_ENGINE]
    return run(argv, cwd=ROOT, env={**clean, **env})


def test_the_sandbox_env_gets_the_pa_dbhealth_backend(server: sandbox.SandboxInfo) -> None:
    # A DB_ENGINE left in the shell by an older sandbox's `env` does not change it.
    shown = demo_shell({**server.env(), "DB_ENGINE": "django.db.backends.mysql"})
    assert shown.returncode == 0, shown.err
    assert shown.out.split() == ["pa_dbhealth.backends.mysql", "pa_dbhealth.backends.mysql.base"]


def test_the_sandbox_the_demo_starts_itself_gets_the_pa_dbhealth_backend(tmp_path: Path) -> None:
    # No DB_* variables: the demo starts the local server in its default folder (under TMPDIR).
    shown = demo_shell({"TMPDIR": str(tmp_path)})
    started = sandbox.SandboxInfo.load(tmp_path / sandbox.default_dir().name)
    try:
        assert shown.returncode == 0, shown.err
        assert "demo: started the local capped server" in shown.err
        assert shown.out.split() == [
            "pa_dbhealth.backends.mysql",
            "pa_dbhealth.backends.mysql.base",
        ]
    finally:
        sandbox.stop(started)
