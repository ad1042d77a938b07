"""``manage.py dbconnections`` against the real capped server."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import run_command
from django.core.management import CommandError, call_command
from django.db import connections
from holders import Holders
from processes import Finished, Processes

mysql = pytest.mark.django_db(transaction=True)


def run(*args: str) -> Finished:
    """Run the command in this process; returns (stdout, stderr, exit code)."""
    return run_command("dbconnections", *args)


def run_json(*args: str) -> dict[str, Any]:
    out, err, code = run("--format", "json", *args)
    assert code == 0, err
    result: dict[str, Any] = json.loads(out)["databases"]["default"]
    return result


@mysql
def test_json_lists_every_connection_of_the_account(raw_connections: Any, settled_ids: Any) -> None:
    connections["default"].close()
    raws = raw_connections(2)
    time.sleep(1.1)
    result = run_json()
    assert result["limit"] == 3
    rows = result["connections"]
    assert {row["id"] for row in rows} == {r.thread_id() for r in raws} | {
        row["id"] for row in rows if row["this_connection"]
    }
    assert len(rows) == 3
    assert [row["this_connection"] for row in rows].count(True) == 1
    for row in rows:
        assert set(row) == {
            "id",
            "user",
            "host",
            "db",
            "command",
            "state",
            "seconds",
            "idle",
            "idle_seconds",
            "this_connection",
            "in_transaction",
            "holder",
        }
        if not row["this_connection"]:
            assert row["command"] == "Sleep" and row["idle_seconds"] >= 1
            assert row["db"] == "app"
            assert row["holder"] is None  # raw driver connections: no tracker knows them
    # It looked with a connection of its own and closed it again.
    expected = sorted(r.thread_id() for r in raws)
    assert settled_ids(lambda ids: sorted(ids) == expected) == expected


@mysql
def test_text_table(raw_connections: Any) -> None:
    connections["default"].close()
    (raw,) = raw_connections(1)
    out, err, code = run()
    assert code == 0, err
    assert "default (mysql): 2 of 3 connections, 1 free" in out
    lines = out.splitlines()
    assert lines[1].split() == ["id", "host", "db", "command", "state", "idle", "s"]
    (mine,) = [line for line in lines if line.endswith("<- this one")]
    (theirs,) = [line for line in lines if line.split()[:1] == [str(raw.thread_id())]]
    assert "Sleep" in theirs and "this one" not in theirs
    assert "Query" in mine
    assert "1 active, 1 sleeping; the server drops connections idle for 300 s" in out


@mysql
def test_kill_idle_kills_exactly_the_idle_connections_of_the_account(
    raw_connections: Any, settled_ids: Any, admin: Any
) -> None:
    connection = connections["default"]
    connection.ensure_connection()  # the command's own, open before it starts
    own = connection.connection.thread_id()
    (old,) = raw_connections(1)
    admin.execute("SELECT CONNECTION_ID()")  # another account's connection, idle too
    admin_id = admin.fetchone()[0]
    time.sleep(1.5)
    (young,) = raw_connections(1)
    out, err, code = run("--kill-idle", "1", "--include-transactions")
    assert code == 0, err
    assert f"killed: {old.thread_id()}" in out
    (marked,) = [line for line in out.splitlines() if line.endswith("<- killed")]
    assert marked.split()[0] == str(old.thread_id())
    expected = sorted([own, young.thread_id()])
    assert sorted(settled_ids(lambda ids: sorted(ids) == expected)) == expected
    admin.execute("SELECT CONNECTION_ID()")  # the other account's connection still works
    assert admin.fetchone()[0] == admin_id
    assert connection.connection.thread_id() == own  # left open: the command did not open it
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


@mysql
def test_kill_idle_0_never_kills_its_own(raw_connections: Any, settled_ids: Any) -> None:
    connections["default"].ensure_connection()
    own = connections["default"].connection.thread_id()
    raws = raw_connections(2)
    result = run_json("--kill-idle", "0", "--include-transactions")
    assert sorted(result["killed"]) == sorted(r.thread_id() for r in raws)
    assert settled_ids(lambda ids: ids == [own]) == [own]


@mysql
def test_kill_idle_spares_connections_whose_transaction_it_cannot_see(
    raw_connections: Any, account_ids: Any
) -> None:
    """The capped account has no PROCESS privilege (as on PythonAnywhere): the server does
    not show whether its idle connections are inside a transaction, so none is killed
    unless --include-transactions says so, and the output says why."""
    connections["default"].close()
    (raw,) = raw_connections(1)
    time.sleep(1.1)
    out, err, code = run("--kill-idle", "1")
    assert code == 0, err
    assert "killed: none" in out
    assert (
        f"spared: {raw.thread_id()} (the server does not show its transaction: "
        "--include-transactions)" in out
    )
    assert raw.thread_id() in account_ids()
    raw.cursor().execute("SELECT 1")


def test_include_transactions_goes_with_kill_idle() -> None:
    _out, err, code = run("--include-transactions")
    assert code == 2 and "--include-transactions goes with --kill-idle SECONDS" in err


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400", "-1"])
def test_seconds_must_be_finite(value: str) -> None:
    for flag in ("--kill-idle", "--watch"):
        with pytest.raises(CommandError, match="seconds must be from 0 to"):
            call_command("dbconnections", f"{flag}={value}")


@mysql
def test_dry_run_kills_nothing_and_lists_what_the_real_run_would_kill(
    raw_connections: Any, account_ids: Any, settled_ids: Any
) -> None:
    connections["default"].close()
    raws = raw_connections(2)
    time.sleep(1.1)
    before = account_ids()
    ids = sorted(r.thread_id() for r in raws)
    # The test account has no PROCESS privilege: transactions unknown, spared, as the real run.
    spared = run_json("--kill-idle", "1", "--dry-run")
    assert spared["would_kill"] == []
    assert set(spared["spared"]) >= {str(i) for i in ids}
    out, err, code = run("--kill-idle", "1", "--dry-run", "--include-transactions")
    assert code == 0, err
    assert f"would kill (dry run): {', '.join(map(str, ids))}" in out
    assert "killed:" not in out
    assert settled_ids(lambda found: found == before) == before
    # The real run with the same options kills exactly what the dry run listed.
    real = run_json("--kill-idle", "1", "--include-transactions")
    assert sorted(real["killed"]) == ids


@mysql
def test_at_the_cap_it_answers_at_once_from_the_registry(
    raw_connections: Any, settings: Any
) -> None:
    settings.PA_DBHEALTH = {"CONNECT_RETRY": 5.0}
    connections["default"].close()
    raw_connections(3)
    started = time.monotonic()
    out, err, code = run()
    assert time.monotonic() - started < 2  # one attempt, not CONNECT_RETRY
    assert code == 0, err
    assert out.startswith(
        "default: 3 of 3 in use (the server refused this look: 1226): "
        "0 named below, 3 not tracked\n"
    )
    assert "gave up" not in out + err
    assert "reload the web app" in out and "scheduled or always-on task" in out
    # --kill-idle cannot run without a connection: its own exit code, after the answer
    out, err, code = run("--kill-idle", "1")
    assert code == 3
    assert "3 of 3 in use" in out and "nothing was killed" in err


@pytest.mark.usefixtures("unblocked_db")
def test_sqlite_does_not_apply() -> None:
    out, _err, code = run("--database", "sqlite", "--kill-idle", "0")
    assert code == 0
    assert "sqlite: does not apply" in out and "not a server" in out


@pytest.mark.usefixtures("unblocked_db")
def test_through_the_retrying_backend_it_answers_without_waiting(
    raw_connections: Any, settings: Any, retrying_alias: str
) -> None:
    settings.PA_DBHEALTH = {"CONNECT_RETRY": 5.0}
    raw_connections(3)
    started = time.monotonic()
    out, err, code = run("--database", retrying_alias)
    assert time.monotonic() - started < 2  # a look never waits in the backend's line
    assert code == 0, err
    assert "3 of 3 in use (the server refused this look: 1226)" in out


@pytest.mark.usefixtures("unblocked_db")
def test_unreachable_server_is_a_clear_error() -> None:
    _out, err, code = run("--database", "unreachable")
    assert code == 2
    assert "database 'unreachable' at 127.0.0.1:9: (200" in err  # 2002 or 2003
    assert len(err.strip().splitlines()) == 1


def test_misuse() -> None:
    assert run("--dry-run")[2] == 2
    assert run("--watch", "0")[2] == 2
    _out, err, code = run("--database", "nope")
    assert code == 1 and "invalid choice: 'nope'" in err


def test_watch_refreshes_until_interrupted(processes: Processes) -> None:
    watch = processes.spawn_manage("dbconnections", "--watch", "0.2")
    watch.wait_for(lambda out: out.count("connections,") >= 2, timeout=20)
    stopped = watch.stop()  # Ctrl-C
    assert stopped.returncode == 0, stopped.err


@pytest.fixture
def held(settings: Any, tmp_path: Path, holders: Holders) -> Holders:
    settings.PA_DBHEALTH = {"REGISTRY_DIR": str(tmp_path / "holders"), "CONNECT_RETRY": 0.5}
    connections.close_all()
    return holders


@mysql
def test_each_connection_names_its_holder_or_says_it_is_not_tracked(
    held: Holders, raw_connections: Any
) -> None:
    mine = held.named("poller")
    (raw,) = raw_connections(1)
    result = run_json()
    rows = {row["id"]: row for row in result["connections"]}
    holder = rows[mine]["holder"]
    assert holder["pid"] == os.getpid()
    assert holder["thread"] == "poller"
    assert holder["origin"].startswith(f"{Path(__file__).parent / 'holders.py'}:")  # the thread
    assert holder["probable_leak"] is True
    assert "fresh_connections" in holder["leak"]["fix"]
    assert set(holder) >= {"host", "pid", "program", "thread", "opened_at", "origin"}
    assert rows[raw.thread_id()]["holder"] is None
    out, err, code = run()
    assert code == 0, err
    lines = out.splitlines()
    (row_line,) = [i for i, line in enumerate(lines) if line.split()[:1] == [str(mine)]]
    assert lines[row_line + 1].strip().startswith(f"held by pid {os.getpid()} on ")
    assert "thread 'poller'" in lines[row_line + 1] and "[probable leak]" in lines[row_line + 1]
    (raw_line,) = [i for i, line in enumerate(lines) if line.split()[:1] == [str(raw.thread_id())]]
    assert lines[raw_line + 1].strip() == (
        "not tracked: a process without pa_dbhealth, a MySQL console, another app"
    )
    assert any(
        line.strip().startswith(f"probable leak, id {mine} (pid {os.getpid()}")
        and "Fix: put fresh_connections around the thread's work" in line
        for line in lines
    )


@mysql
def test_at_the_cap_it_counts_the_registrys_holders_and_the_untracked(
    held: Holders, raw_connections: Any
) -> None:
    first, second = held.named("worker-a"), held.named("worker-b")
    raw_connections(1)  # the third: untracked
    out, err, code = run()
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == (
        "default: 3 of 3 in use (the server refused this look: 1226): 2 named below, 1 not tracked"
    )
    for conn_id, thread in ((first, "worker-a"), (second, "worker-b")):
        assert any(
            line.startswith(f"  id {conn_id}: pid {os.getpid()} on ")
            and f"thread {thread!r}" in line
            and "(this process)" in line
            for line in lines
        ), out
    assert "What the registry cannot know" in out
    out, err, code = run("--format", "json")
    assert code == 0, err
    view = json.loads(out)["databases"]["default"]
    assert view["source"] == "registry"
    assert (view["limit"], view["in_use"], view["named"], view["not_tracked"]) == (3, 3, 2, 1)
    assert sorted(item["id"] for item in view["connections"]) == sorted([first, second])
    assert {item["holder"]["thread"] for item in view["connections"]} == {"worker-a", "worker-b"}
    assert "cannot know" in view["cannot_know"]


@mysql
def test_a_planted_registry_neither_hides_a_holder_nor_slows_the_listing(
    held: Holders, tmp_path: Path
) -> None:
    from test_registry_reader import JUNK, LARGE, plant

    plant(tmp_path / "holders")  # JUNK malformed a*.json and LARGE valid 250 KB entries
    mine = held.named("poller")
    started = time.monotonic()
    result = run_json()
    took = time.monotonic() - started
    assert took < 1.0, f"dbconnections took {took:.2f} s with {JUNK} junk files and {LARGE} entries"
    rows = {row["id"]: row for row in result["connections"]}
    assert rows[mine]["holder"]["thread"] == "poller"


@mysql
def test_a_refused_registry_is_said_once_with_a_safe_fix(settings: Any) -> None:
    settings.PA_DBHEALTH = {"REGISTRY_DIR": "/tmp"}
    out, err, code = run()
    assert code == 0, err
    assert out.count("pa_dbhealth.E028") == 1
    assert "The registry of holders is off: /tmp is open to other users (mode 1777)" in out
    assert "chmod" not in out
    (finding,) = json.loads(run("--format", "json")[0])["findings"]
    assert (
        finding["id"] == "pa_dbhealth.E028"
        and "Remove PA_DBHEALTH['REGISTRY_DIR']" in (finding["hint"])
    )
