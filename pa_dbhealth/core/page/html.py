"""The status page as HTML, for every face: plain HTML and a little CSS, no script.

Every value is escaped here (``html.escape``); a face hands over the model
(``core.page``), the URL of the page and its CSRF field (``(name, value)``: Django's
``csrfmiddlewaretoken``, the Flask face's own). The page the GET answers refreshes itself
every :data:`REFRESH` seconds (``<meta http-equiv="refresh">``, to the page's URL, so a
refresh after a POST is a GET). The kill's confirmation is in
``core.page.kill_html``, the table of connections in ``core.page.rows_html``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from html import escape

from pa_dbhealth.core.health import Status
from pa_dbhealth.core.page import REGISTRY, SERVER, Database, Page
from pa_dbhealth.core.page.kill import DEFAULT_MIN_IDLE
from pa_dbhealth.core.page.rows_html import table
from pa_dbhealth.core.registry import PUBLISH_AFTER
from pa_dbhealth.core.render_holders import WAY_OUT

REFRESH = 5
CANNOT_KNOW = (  # below the registry's rows, whose heading says it sees only processes with it
    f"It also misses connections a request opened in its last {PUBLISH_AFTER:g} s, and an "
    'entry can be a few seconds old (<a href="https://github.com/pa-dbhealth/pa-dbhealth/blob/'
    'main/docs/holders.md#what-it-cannot-know">what the registry cannot know</a>).'
)
Csrf = tuple[str, str]
STYLE = """
body{font:15px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:90em;padding:0 1em;color:#222}
h1,h2{margin:.6em 0 .3em}table{border-collapse:collapse;width:100%;margin:.5em 0}
th,td{border-bottom:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top;
overflow-wrap:anywhere}table.connections{table-layout:fixed}
.connections th:nth-child(1){width:4em}.connections th:nth-child(2){width:8em}
.connections th:nth-child(3){width:12em}.connections th:nth-child(4){width:9em}
.connections th:nth-child(5){width:16em}.connections th:nth-child(6){width:7em}
input[type=number]{width:5em}
.ok{color:#17692e}.warning{color:#8a5a00}.critical,.error{color:#b00020}
.notice{border-left:4px solid #17692e;padding:.3em .8em;background:#eef7f0}
.notice.error{border-color:#b00020;background:#fbeef0}
meter{width:12em;height:1.2em;vertical-align:middle}.leak{color:#8a5a00}
.muted{color:#666;font-size:90%}code{font-size:95%}form{margin:.6em 0}
"""


@dataclass(frozen=True)
class Notice:
    """A line at the top of the page: what an action did, or why it could not."""

    text: str
    error: bool = False


def document(title: str, body: Iterable[str], refresh_to: str | None = None) -> str:
    refresh = (
        f'<meta http-equiv="refresh" content="{REFRESH}; url={escape(refresh_to)}">'
        if refresh_to is not None
        else ""
    )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="robots" content="noindex">{refresh}<title>{escape(title)}</title>'
        f"<style>{STYLE}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def _status(status: Status, ident: str = "status") -> str:
    return f'<span class="status {status.value}" id="{escape(ident)}">{status.value}</span>'


def hidden(csrf: Csrf, **fields: object) -> str:
    pairs = [csrf, *((key, str(value)) for key, value in fields.items())]
    return "".join(
        f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in pairs
    )


def _notice(notice: Notice | None) -> list[str]:
    if notice is None:
        return []
    kind = "notice error" if notice.error else "notice"
    return [f'<p class="{kind}" id="notice">{escape(notice.text)}</p>']


def _stamp() -> str:
    return f'<p class="muted">As of {time.strftime("%Y-%m-%d %H:%M:%S %Z")}.</p>'


def status_only(
    status: Status,
    url: str,
    *,
    csrf: Csrf | None,
    hint: str,
    notice: Notice | None = None,
    refresh: bool = True,
) -> str:
    """What an anonymous visitor sees: the status, and the token form when ``csrf`` is
    given (a token is configured), else ``hint`` (how to enable the details)."""
    body = [f"<h1>Database status: {_status(status)}</h1>", *_notice(notice)]
    if csrf is not None:
        body.append(
            f'<form method="post" action="{escape(url)}" id="sign-in">'
            f"{hidden(csrf, action='login')}"
            '<label>Health token <input type="password" name="token" autocomplete="off" '
            'required autofocus></label> <button type="submit">Show details</button></form>'
        )
    body += [f'<p class="muted" id="hint">{escape(hint)}</p>', _stamp()]
    # No refresh under the token form: it would wipe what is being typed.
    refresh_to = url if refresh and csrf is None else None
    return document(f"Database status: {status.value}", body, refresh_to)


def _count(db: Database) -> str:
    used = "?" if db.used is None else str(db.used)
    if db.cap is None:
        return (
            f'<p><strong id="count-{escape(db.name)}">{used}</strong> connections in use '
            "(no per-account cap)</p>"
        )
    meter = (
        # green while two or more are free, yellow with one left, red at the cap
        f'<meter min="0" max="{db.cap}" value="{db.used or 0}" low="{max(db.cap - 1.5, 0):g}" '
        f'high="{db.cap - 0.5:g}" optimum="0" title="{used} of {db.cap}"></meter>'
    )
    whose = " held, as the registry of holders says" if db.source == REGISTRY else " in use"
    if db.at_cap:  # counted as dbconnections counts it: the server's refusal is the truth
        named, untracked = db.named, max(db.cap - db.named, 0)
        whose = (
            f' in use <span class="critical">(the server refused this page\'s look): '
            f"{named} named below, {untracked} not tracked</span>"
        )
    return (
        f'<p>{meter} <strong id="count-{escape(db.name)}">{used} of {db.cap}</strong> '
        f"connections{whose}</p>"
    )


def _findings(db: Database) -> list[str]:
    alone = (
        '<p class="muted">Judged on the settings alone: the server was not asked again.</p>'
        if db.settings_only
        else ""
    )
    if not db.findings:
        return [f"<h3>Audit</h3>{alone}<p>No findings.</p>"]
    items = "".join(
        f'<li class="{f.level.label}"><code>{escape(f.id)}</code> {f.level.label}: '
        f'{escape(f.message)}<br><span class="muted">Fix: {escape(f.hint)}</span></li>'
        for f in db.findings
    )
    return [f'<h3>Audit</h3>{alone}<ul class="findings">{items}</ul>']


def _kill_form(name: str, url: str, csrf: Csrf) -> str:
    """The form under each database that asks what a kill would free."""
    return (
        f'<h3>Free idle connections</h3><form method="post" action="{escape(url)}" class="free">'
        f"{hidden(csrf, action='preview', database=name)}"
        f'<label>Idle for at least <input type="number" name="min_idle" min="0" step="1" '
        f'value="{DEFAULT_MIN_IDLE}" required> s</label> '
        '<button type="submit">Show what would be freed</button></form>'
        '<p class="muted">Only this account\'s idle connections, never one inside a '
        "transaction; you confirm before anything is killed.</p>"
    )


def _database(db: Database, url: str, csrf: Csrf) -> str:
    name = escape(db.name)
    parts = [f'<section id="db-{name}"><h2>{name} {_status(db.status, f"status-{db.name}")}</h2>']
    if not db.applicable:
        return parts[0] + f"<p>{escape(db.note)}</p></section>"
    parts.append(_count(db))
    parts += [f'<p class="{db.status.value}">{escape(r)}</p>' for r in db.reasons]
    if db.source == REGISTRY:
        parts.append(
            f'<p class="critical" id="problem-{name}">The server could not be asked '
            f"({escape(db.problem or '')}). Below is what the registry of holders knows; it "
            "cannot see connections of processes without pa_dbhealth.</p>"
        )
    if db.registry_problem:
        parts.append(f'<p class="warning">{escape(db.registry_problem)}</p>')
    parts.append(table(db.rows))
    if db.source == REGISTRY:
        parts.append(f'<p class="muted" id="cannot-know-{name}">{CANNOT_KNOW}</p>')
    parts += _findings(db)
    if db.source == SERVER:  # freeing needs a connection to look and kill with
        parts.append(_kill_form(db.name, url, csrf))
    else:
        parts.append(
            f'<h3>Free a connection</h3><p class="way-out" id="way-out-{name}">'
            "This page cannot open a connection to free idle ones. "
            f"{escape(WAY_OUT)}</p>"
        )
    return "".join(parts) + "</section>"


def full(page: Page, url: str, *, csrf: Csrf, notice: Notice | None = None) -> str:
    """The whole page for a visitor with access; it refreshes itself."""
    body = [f"<h1>Database status: {_status(page.status)}</h1>", *_notice(notice)]
    body += [_database(db, url, csrf) for db in page.databases]
    body.append(
        f'<form method="post" action="{escape(url)}">{hidden(csrf, action="logout")}'
        '<button type="submit">Sign out</button></form>'
    )
    body.append(_stamp())
    return document(f"Database status: {page.status.value}", body, url)
