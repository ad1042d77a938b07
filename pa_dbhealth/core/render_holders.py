"""Who holds the connections, in words: what every face prints from the registry of holders.

The listings (``dbconnections``, the health view, the cap report) put a holder next to each
of the server's rows, or say that none is known; when the server cannot be asked (the cap is
full), they print the registry's view alone, saying what it cannot know.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from pa_dbhealth.core.registry import KEPT_THREAD, PUBLISH_AFTER, Found, Holder
from pa_dbhealth.core.registry.process import this_process
from pa_dbhealth.core.vendors import AccountConnection

Line = tuple[str, "str | None"]

UNTRACKED = "not tracked: a process without pa_dbhealth, a MySQL console, another app"
KEPT_WHY = (
    "given up as soon as a connect of the site waits for a slot, or a console or task finds "
    "the account full"
)
CANNOT_KNOW = (
    "What the registry cannot know: connections of processes without pa_dbhealth (a MySQL "
    "console, another app, a script without it), connections opened inside a request in the "
    f"last {PUBLISH_AFTER:g} s (a request's connection is written once it outlives the request "
    "or is held longer), and whether an entry is still current (each process writes when its "
    "connections change; last use at most every few seconds)."
)


WAY_OUT = (
    "Stop a holder named above, or the one not tracked: reload the web app, stop the "
    "scheduled or always-on task, close the console (on PythonAnywhere: the Web tab's "
    "Reload, the Tasks tab). The server also drops connections idle for longer than its "
    "wait_timeout (300 s on PythonAnywhere)."
)


def when(timestamp: float) -> str:
    """A local time: ``16:48:59`` today, with the date before."""
    moment = time.localtime(timestamp)
    today = time.localtime()[:3] == moment[:3]
    return time.strftime("%H:%M:%S" if today else "%Y-%m-%d %H:%M:%S", moment)


def short_program(program: str, width: int = 80) -> str:
    """A command line cut in the middle to ``width`` characters, keeping its start (what
    runs) and its end (the script, or which uWSGI worker)."""
    if len(program) <= width:
        return program
    tail = width // 3
    return f"{program[: width - tail - 5]} ... {program[-tail:]}"


def describe(holder: dict[str, Any]) -> str:
    """One line from a holder's ``as_dict()``: pid, host, program, thread, when and where
    it was opened."""
    opened = when(holder["opened_at"])
    where = f" at {holder['origin']}" if holder["origin"] else ""
    flag = " [probable leak]" if holder["probable_leak"] else ""
    if holder["thread"] == KEPT_THREAD:
        flag += f" [{KEPT_WHY}]"
    return (
        f"pid {holder['pid']} on {holder['host']} ({short_program(holder['program'])}), thread "
        f"{holder['thread']!r}, opened {opened}{where}{flag}"
    )


def holder_line(holder: dict[str, Any] | None) -> str:
    """``held by ...`` for a row the registry explains, else why nothing is known."""
    return f"held by {describe(holder)}" if holder is not None else UNTRACKED


def leak_lines(holders: Iterable[tuple[int | None, dict[str, Any]]]) -> list[str]:
    """One line per probable leak, from ``(connection id, holder dict)``: which connection,
    whose, why, and the fix."""
    lines = []
    for conn_id, holder in holders:
        leak = holder.get("leak")
        if not leak:
            continue
        which = f"id {conn_id}" if conn_id is not None else "a connection"
        lines.append(
            f"probable leak, {which} (pid {holder['pid']}, thread {holder['thread']!r}): "
            f"{leak['why']}. Fix: {leak['fix']}."
        )
    return lines


def server_view(rows: Sequence[AccountConnection], by_id: dict[int, Holder]) -> dict[str, Any]:
    """The server's rows with their holders (null: none known), as JSON."""
    return {
        "source": "server",
        "connections": [
            {
                "id": row.id,
                "this_connection": row.this_connection,
                "holder": None if row.id not in by_id else by_id[row.id].as_dict(),
            }
            for row in rows
        ],
    }


def registry_view(found: Found, holders: Sequence[Holder], reason: str) -> dict[str, Any]:
    """The registry's view of one database as JSON, for when the server cannot be asked:
    ``connections`` lists what the registry's entries say, each ``{"id", "holder"}``."""
    return {
        "source": "registry",
        "reason": reason,
        "registry": None if found.directory is None else str(found.directory),
        "registry_problem": found.problem,
        "registry_left_out": found.left_out,
        "connections": [{"id": h.connection.id, "holder": h.as_dict()} for h in holders],
        "cannot_know": CANNOT_KNOW,
    }


def registry_lines(alias: str, view: dict[str, Any]) -> list[Line]:
    """The registry's view of one database (``registry_view``) as text lines, marked as
    such."""
    full = view.get("in_use") is not None and view["in_use"] >= view.get("limit", 0)
    lines: list[Line] = [
        (f"{alias}: {view['reason']}", "ERROR" if full else "WARNING"),
        ("  the registry of holders says (not the server):", None),
    ]
    if view["registry_problem"]:
        lines.append((f"  {view['registry_problem']}", "WARNING"))
    elif not view["connections"]:
        lines.append(("  no process with pa_dbhealth says it holds a connection", None))
    if view.get("registry_left_out"):
        left = view["registry_left_out"]
        lines.append((f"  {left} entries not read: more than one read of the registry takes", None))
    host, pid = this_process()[:2]
    for item in view["connections"]:
        holder = item["holder"]
        written = when(holder["written_at"])
        this = " (this process)" if (holder["host"], holder["pid"]) == (host, pid) else ""
        lines.append((f"  id {item['id']}: {describe(holder)}{this}, as of {written}", None))
    leaks = leak_lines((item["id"], item["holder"]) for item in view["connections"])
    lines += [(f"  {line}", "WARNING") for line in leaks]
    lines.append((f"  {CANNOT_KNOW}", None))
    if view.get("way_out"):
        lines.append((f"  {view['way_out']}", None))
    return lines
