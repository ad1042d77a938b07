"""The confirmation of a kill, as HTML (the rules are in ``core.page.kill``, the rest of the
page in ``core.page.html``): the connections a kill would free, each ticked, and the choice
to include those whose transaction the server does not show. It does not refresh itself."""

from __future__ import annotations

from collections.abc import Iterable
from html import escape

from pa_dbhealth.core.page import Row
from pa_dbhealth.core.page.html import Csrf, document, hidden
from pa_dbhealth.core.page.rows_html import held_by, idle


def confirm(name: str, min_idle: float, rows: Iterable[Row], url: str, *, csrf: Csrf) -> str:
    """The confirmation: the connections a kill would free, each ticked, and the choice to
    include those whose transaction the server does not show. No refresh."""
    rows = list(rows)
    title = f"Free idle connections of {name}?"
    body = [f"<h1>{escape(title)}</h1>"]
    back = f'<p><a href="{escape(url)}">Back to the status page</a></p>'
    if not rows:
        body.append(
            f'<p id="nothing">No connection of the account has been idle for {min_idle:g} s '
            "or more (besides this page's own): nothing to free.</p>"
        )
        return document(title, [*body, back])
    ticks = "".join(
        f'<tr><td><input type="checkbox" name="id" value="{row.id}" id="kill-{row.id}" checked>'
        f'</td><td><label for="kill-{row.id}">{row.id}</label></td><td>{idle(row)}</td>'
        f"<td>{escape(held_by(row))}</td></tr>"
        for row in rows
    )
    body += [
        f"<p>These connections of the account have been idle for {min_idle:g} s or more. "
        "Each ticked one is checked again right before it is killed: it is killed only if "
        "it is still this account's, still idle, and not inside a transaction.</p>",
        f'<form method="post" action="{escape(url)}" id="confirm">'
        f"{hidden(csrf, action='kill', database=name, min_idle=f'{min_idle:g}')}"
        "<table><thead><tr><th>kill</th><th>id</th><th>idle</th><th>held by</th></tr></thead>"
        f"<tbody>{ticks}</tbody></table>"
        '<p><label><input type="checkbox" name="include_unknown" value="1" '
        'id="include-unknown"> Also kill those whose transaction the server does not show '
        "(MySQL without the PROCESS privilege, as on PythonAnywhere): any uncommitted work "
        "of theirs is rolled back.</label></p>"
        '<button type="submit" name="confirm" value="yes">Kill the ticked connections</button>'
        "</form>",
        back,
    ]
    return document(title, body)
