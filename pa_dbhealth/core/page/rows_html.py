"""A database's connections as an HTML table, for the status page and the kill's
confirmation: one row per connection, who holds it (the registry's entry) and how long it
has been idle. Every value is escaped here."""

from __future__ import annotations

import time
from collections.abc import Iterable
from html import escape

from pa_dbhealth.core.page import Row
from pa_dbhealth.core.render_holders import UNTRACKED, describe, short_program, when


def held_by(row: Row) -> str:
    return UNTRACKED if row.holder is None else describe(row.holder)


def idle(row: Row) -> str:
    if row.command:
        return f"{row.seconds} s" if row.idle else f"{escape(row.command)} {row.seconds} s"
    holder = row.holder or {}
    last = holder.get("last_used") or holder.get("opened_at")
    if not last:
        return "?"
    seconds = max(round(time.time() - last), 0)
    return f'<span title="since its last use, as the registry says">{seconds} s</span>'


def row_html(row: Row) -> str:
    ident = "?" if row.id is None else str(row.id)
    holder = row.holder
    if holder is None:
        note = "this page's own look" if row.this_page else UNTRACKED
        cells = [ident, "", "", "", "", idle(row), escape(note)]
    else:
        leak = holder.get("leak")
        note = (
            f'<span class="leak">probable leak: {escape(leak["why"])}. '
            f"Fix: {escape(leak['fix'])}.</span>"
            if leak
            else ""
        )
        if row.this_page:
            note = f"this page looked through it. {note}"
        origin = f" at <code>{escape(holder['origin'])}</code>" if holder.get("origin") else ""
        cells = [
            ident,
            escape(f"pid {holder['pid']} on {holder['host']}"),
            f"<code>{escape(short_program(holder['program'], 60))}</code>",
            escape(holder["thread"]),
            f"{escape(when(holder['opened_at']))}{origin}",
            idle(row),
            note,
        ]
    tds = "".join(f"<td>{c}</td>" for c in cells)
    return f'<tr class="connection" data-id="{ident}">{tds}</tr>'


def table(rows: Iterable[Row]) -> str:
    head = "".join(
        f"<th>{h}</th>" for h in ("id", "process", "program", "thread", "opened", "idle", "note")
    )
    body = "".join(map(row_html, rows))
    return f'<table class="connections"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
