"""A read of the registry (``pa_dbhealth.core.registry.reader``) with a directory full of what
a process of the account could plant: junk that must not hide the real entries, large
entries that must not make a read slow, dead and stale files that must go."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from test_registry import entry, held, write_entry

from pa_dbhealth.core import registry
from pa_dbhealth.core.registry import reader as registry_reader
from pa_dbhealth.core.registry.files import file_name
from pa_dbhealth.core.registry.process import this_host

pytestmark = pytest.mark.matrix_once  # the same on every Django version

JUNK = 1000
LARGE = 1000


def large_entry(pid: int) -> dict[str, Any]:
    """A valid entry of another host of almost ``MAX_BYTES``: 15 connections with long stacks."""
    stack = "  File x.py, line 1, in f\n" * 600  # 16 000 characters
    connections = [held(100 + i, stack=stack[:15_990]).as_json() for i in range(15)]
    return entry(pid, host="elsewhere", connections=connections, written_at=time.time())


def plant(where: Path) -> None:
    """JUNK malformed files sorted before the real ones, and LARGE valid entries of another
    host (each within MAX_BYTES)."""
    where.mkdir(mode=0o700, parents=True, exist_ok=True)
    for i in range(JUNK):
        (where / f"a{i:04}.json").write_text("{not json")
    template = json.dumps(large_entry(1))
    assert registry.MAX_BYTES * 0.9 < len(template) <= registry.MAX_BYTES
    for pid in range(1, LARGE + 1):
        data = template.replace('"pid": 1,', f'"pid": {pid},', 1)
        (where / file_name("elsewhere", pid)).write_text(data)


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("planted") / "holders"
    plant(where)
    return where


def test_junk_and_large_entries_neither_hide_nor_slow_this_hosts_entry(planted: Path) -> None:
    mine = write_entry(planted, entry(os.getpid()))
    try:
        started = time.monotonic()
        found = registry.read(planted)
        took = time.monotonic() - started
    finally:
        mine.unlink()
    assert took < 1.0, f"a read took {took:.2f} s"
    files = [p.file for p in found.processes]
    assert files[0] == mine.name  # this host's entries first
    assert 0 < len(files) - 1 < LARGE and found.left_out == LARGE - (len(files) - 1)
    assert (planted / "a0000.json").exists()  # junk, but not stale yet: left


def test_dead_entries_of_this_host_are_pruned_unread(where: Path) -> None:
    gone = [99_999_990 + i for i in range(3)]  # no process has these pids
    for pid in gone:
        write_entry(where, entry(pid), name=file_name(this_host(), pid)).write_text("{junk")
    live = write_entry(where, entry(os.getpid()))
    found = registry.read(where)
    assert [p.file for p in found.processes] == [live.name]
    assert sorted(p.name for p in where.iterdir()) == [live.name]


def test_stale_junk_is_removed_and_fresh_or_foreign_junk_stays(where: Path) -> None:
    write_entry(where, entry(os.getpid()))
    old = time.time() - registry_reader.STALE_JUNK - 60
    stale = {"a1.json": b"{not json", file_name("elsewhere", 7): b"[]"}
    for name, data in stale.items():
        (where / name).write_bytes(data)
        os.utime(where / name, (old, old))
    (where / ".x.json.ab12.tmp").write_bytes(b"")  # a writer's, left behind
    older = time.time() - registry_reader.STALE_TEMPORARY - 60
    os.utime(where / ".x.json.ab12.tmp", (older, older))
    (where / ".y.json.cd34.tmp").write_bytes(b"")  # stale only after STALE_TEMPORARY
    os.utime(where / ".y.json.cd34.tmp", (old, old))
    (where / "fresh.json").write_text("{")
    (where / "notes.txt").write_text("not the registry's")
    os.utime(where / "notes.txt", (old, old))
    (where / "sub.json").mkdir()
    os.utime(where / "sub.json", (old, old))
    registry.read(where)
    left = {p.name for p in where.iterdir()}
    assert left == {
        file_name(this_host(), os.getpid()),
        ".y.json.cd34.tmp",
        "fresh.json",
        "notes.txt",
        "sub.json",
    }
    assert registry.read(where, prune=False).processes  # and a read without pruning is fine


def test_junk_does_not_count_against_the_entries_a_read_takes(
    where: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry_reader, "MAX_ENTRIES", 2)
    for i in range(5):  # named like entries of another host, sorted first, malformed
        write_entry(where, {}, name=file_name("aaa", i + 1)).write_text("{")
    write_entry(where, entry(os.getpid()))
    write_entry(where, entry(2, host="other"))
    write_entry(where, entry(3, host="other"))
    found = registry.read(where)
    assert len(found.processes) == 2 and found.left_out == 1
    assert found.processes[0].pid == os.getpid()


@pytest.fixture
def where(tmp_path: Path) -> Path:
    return tmp_path / "holders"
