"""Which Django releases talk to a MySQL or MariaDB server of a given version.

Django refuses a server older than its ``minimum_database_version`` (in
``django/db/backends/mysql/features.py``) at the first connect: every request then fails
with ``NotSupportedError``. The table below is that figure of each feature release; a test
holds it against the installed Django. Core imports no Django: a face passes the running
Django's ``(major, minor)`` and the server's version string.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import re
from dataclasses import dataclass

from pa_dbhealth.core import findings
from pa_dbhealth.core.findings import Finding

Release = tuple[int, int]
Version = tuple[int, ...]

# Django feature release -> the oldest server it talks to, by flavour.
MINIMUMS: dict[Release, dict[str, Version]] = {
    (4, 2): {"MariaDB": (10, 4), "MySQL": (8,)},
    (5, 0): {"MariaDB": (10, 4), "MySQL": (8, 0, 11)},
    (5, 1): {"MariaDB": (10, 5), "MySQL": (8, 0, 11)},
    (5, 2): {"MariaDB": (10, 5), "MySQL": (8, 0, 11)},
    (6, 0): {"MariaDB": (10, 6), "MySQL": (8, 0, 11)},
    (6, 1): {"MariaDB": (10, 11), "MySQL": (8, 4)},
}
# Long-term support releases and the month their security fixes end.
LTS_UNTIL: dict[Release, datetime.date] = {
    (4, 2): datetime.date(2026, 4, 30),
    (5, 2): datetime.date(2028, 4, 30),
}
# The newest server of each flavour every release in MINIMUMS supports: where to move to.
CURRENT = {"MariaDB": "10.11", "MySQL": "8.4"}

_NUMBERS = re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{1,2})")  # what Django itself matches


@dataclass(frozen=True)
class ServerVersion:
    flavour: str  # "MariaDB" or "MySQL"
    numbers: Version
    text: str  # as the server says it


def parse(text: str) -> ServerVersion | None:
    """A server's version string (``VERSION()`` or the greeting's) as Django reads it; None
    when it has no x.y.z. MariaDB's greeting prefix ``5.5.5-`` is dropped."""
    text = text.removeprefix("5.5.5-")
    match = _NUMBERS.match(text)
    if match is None:
        return None
    flavour = "MariaDB" if "mariadb" in text.lower() else "MySQL"
    return ServerVersion(flavour, tuple(int(n) for n in match.groups()), text)


def dotted(version: Version) -> str:
    return ".".join(str(n) for n in version)


def supports(release: Release, server: ServerVersion) -> bool | None:
    """Whether Django ``release`` talks to ``server``; None for a release not in the table."""
    minimums = MINIMUMS.get(release)
    return None if minimums is None else server.numbers >= minimums[server.flavour]


def _next_release(release: Release) -> Release | None:
    later = sorted(r for r in MINIMUMS if r > release)
    return later[0] if later else None


def _lts_that_supports(server: ServerVersion, today: datetime.date) -> Release | None:
    fitting = [r for r, until in LTS_UNTIL.items() if until >= today and supports(r, server)]
    return max(fitting, default=None)


def _name(release: Release) -> str:
    return f"Django {release[0]}.{release[1]}"


def version_findings(
    who: str, release: Release, text: str, today: datetime.date | None = None
) -> list[Finding]:
    """E031 when Django ``release`` refuses the server that says ``text``; I033 when it talks
    to it but the next feature release will not. [] when both do, or nothing is known."""
    server = parse(text)
    if server is None:
        return []
    today = today or datetime.date.today()
    minimums = MINIMUMS.get(release)
    if minimums is None:
        return []
    move = f"move the database to {server.flavour} {CURRENT[server.flavour]} or later"
    minimum = minimums[server.flavour]
    if server.numbers < minimum:
        lts = _lts_that_supports(server, today)
        if lts is None:
            fix = f"No supported Django release talks to {server.flavour} {server.text}: {move}."
        else:
            until = LTS_UNTIL[lts].strftime("%B %Y")
            fix = (
                f"Stay on {_name(lts)} LTS (pip install 'Django>={dotted(lts)},"
                f"<{lts[0]}.{lts[1] + 1}'; supported until {until}), or {move}."
            )
        return [
            findings.server_too_old(
                who, _name(release), server.flavour, server.text, dotted(minimum), fix
            )
        ]
    following = _next_release(release)
    if following is not None and not supports(following, server):
        needed = dotted(MINIMUMS[following][server.flavour])
        fix = f"Before upgrading Django past {dotted(release)}, {move}."
        return [
            findings.server_too_old_next(
                who, _name(following), server.flavour, server.text, needed, fix
            )
        ]
    return []


def installed_django() -> Release | None:
    """The ``(major, minor)`` of the Django installed beside pa_dbhealth (not imported), or
    None: what ``python -m pa_dbhealth check`` judges the server by."""
    try:
        text = importlib.metadata.version("django")
    except importlib.metadata.PackageNotFoundError:
        return None
    match = re.match(r"(\d+)\.(\d+)", text)
    return None if match is None else (int(match[1]), int(match[2]))


def installed_django_findings(who: str, vendor: str, version: str) -> list[Finding]:
    """E031/I033 for a MySQL/MariaDB server against the installed Django, if any."""
    release = installed_django()
    if vendor != "mysql" or release is None:
        return []
    return version_findings(who, release, version)
