"""Secrets on command lines (``pa_dbhealth.core.registry.redact``): every form hidden where the
registry writes a program, and again where a reader shows one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pa_dbhealth.core import registry
from pa_dbhealth.core.registry import redact
from pa_dbhealth.core.registry.files import file_name
from pa_dbhealth.core.registry.process import start_ticks, this_host
from pa_dbhealth.core.render_holders import describe

pytestmark = pytest.mark.matrix_once  # the same on every Django version

# (the arguments, what is shown, the secrets that must not be)
FORMS = [
    (
        ["-b", "redis://:Br0kerSecret@redis:6379/0"],
        "-b redis://:***@redis:6379/0",
        ["Br0kerSecret"],
    ),
    (["mysql://app:p@ss-WORD-tail@db/app"], "mysql://app:***@db/app", ["ss-WORD", "tail@"]),
    (["--url=mysql://app:pw1@db/app"], "--url=mysql://app:***@db/app", ["pw1"]),
    (["mysql", "-psecret1", "app"], "mysql -p*** app", ["secret1"]),
    (["mysql", "-p", "secret2", "app"], "mysql -p *** app", ["secret2"]),
    (["--pass", "secret3"], "--pass ***", ["secret3"]),
    (["--password=secret4"], "--password=***", ["secret4"]),
    (["--passwd", "secret5"], "--passwd ***", ["secret5"]),
    (["--pwd=secret6"], "--pwd=***", ["secret6"]),
    (["--db-pass=secret7"], "--db-pass=***", ["secret7"]),
    (["--DB_PASSWORD", "secret8"], "--DB_PASSWORD ***", ["secret8"]),
    (["--client-secret", "secret9"], "--client-secret ***", ["secret9"]),
    (["--auth-token=secret10"], "--auth-token=***", ["secret10"]),
    (["--api-key", "secret11"], "--api-key ***", ["secret11"]),
    (["PASSWORD=secret12"], "PASSWORD=***", ["secret12"]),
    (["SECRET_KEY=secret13", "run"], "SECRET_KEY=*** run", ["secret13"]),
    (["DATABASE_URL=postgres://u:secret14@h/d"], "DATABASE_URL=postgres://u:***@h/d", ["secret14"]),
    (
        ["postgres://h/d?sslmode=require&password=secret15"],
        "postgres://h/d?sslmode=require&password=***",
        ["secret15"],
    ),
    (["--password", "two words"], "--password ***", ["two words"]),
]
PLAIN = ["manage.py", "runserver", "--noreload", "mysql://app@db/app", "-v", "2"]


@pytest.mark.parametrize(("arguments", "shown", "secrets"), FORMS)
def test_each_form_is_hidden(arguments: list[str], shown: str, secrets: list[str]) -> None:
    written = " ".join(redact.words(arguments))
    assert written == shown
    for secret in secrets:
        assert secret not in written
    assert redact.command_line(written) == shown  # read back: hidden still, nothing more
    if " " not in "".join(arguments):  # a line another writer left as it was
        assert redact.command_line(" ".join(arguments)) == shown


def test_words_without_secrets_stay() -> None:
    assert redact.words(PLAIN) == PLAIN


def write_entry(where: Path, program: str) -> None:
    pid = os.getpid()
    held = {
        "server": "127.0.0.1:3306", "account": "app", "vendor": "mysql", "id": 9,
        "name": "default", "thread": "MainThread", "opened_at": 1.0, "last_used": None,
        "caller": None, "stack": None, "leak": None,
    }  # fmt: skip
    data = {
        "format": 1, "host": this_host(), "pid": pid, "started": start_ticks(pid),
        "program": program, "written_at": 2.0, "connections": [held],
    }  # fmt: skip
    where.mkdir(mode=0o700, exist_ok=True)
    (where / file_name(this_host(), pid)).write_text(json.dumps(data))


def test_a_file_written_with_secrets_is_read_without_them(tmp_path: Path) -> None:
    one_word = [arguments for arguments, _, _ in FORMS if " " not in "".join(arguments)]
    every = [word for arguments in one_word for word in arguments]
    write_entry(tmp_path / "holders", "python app.py " + " ".join(every))
    (process,) = registry.read(tmp_path / "holders").processes
    (holder,) = registry.Found(None, (process,)).holders("127.0.0.1:3306", "app")
    line = describe(holder.as_dict())  # what dbconnections, the page and the log lines say
    for _, _, secrets in FORMS:
        for secret in secrets:
            assert secret not in process.program
            assert secret not in line


PUBLISHING = """
import sys
from pathlib import Path
from pa_dbhealth.core import registry
registry.publisher.publish(Path(sys.argv[1]), [registry.HeldConnection(
    server="127.0.0.1:3306", account="app", vendor="mysql", id=7, name="default",
    thread="MainThread", opened_at=1.0, last_used=None, caller=None)])
print("written", flush=True)
sys.stdin.read()
"""


def test_a_process_with_every_form_publishes_none(tmp_path: Path) -> None:
    where = tmp_path / "holders"
    every = [word for arguments, _, _ in FORMS for word in arguments]
    process = subprocess.Popen(
        [sys.executable, "-c", PUBLISHING, str(where), *every],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "written\n"
        raw = (where / file_name(this_host(), process.pid)).read_text()
    finally:
        process.communicate("", timeout=30)
    for _, shown, secrets in FORMS:
        assert shown in json.loads(raw)["program"]
        for secret in secrets:
            assert secret not in raw
