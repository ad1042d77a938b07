"""A ``DATABASES`` entry half switched to MySQL, found without connecting.

``startproject`` writes SQLite's ``NAME`` (a path); a site that changes only ``ENGINE`` to
MySQL's (``pa_dbhealth.backends.mysql`` or Django's own) keeps that path, and the driver ends
in ``TypeError: connect() argument 4 must be str, not PosixPath`` rather than a database
error. An empty ``NAME`` cannot name a database either (E025). An empty ``HOST`` or ``USER``
works only for a server on this machine (W026). Values the driver reads from ``OPTIONS``
(``host``, ``user``, ``database``, ...) or from a ``read_default_file`` count as set.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from pa_dbhealth.core import findings
from pa_dbhealth.core.findings import Finding

__all__ = ["IDS", "half_switched"]

IDS = ("pa_dbhealth.E025", "pa_dbhealth.W026")
# The keys of OPTIONS that mysqlclient takes in place of each setting (Django passes OPTIONS on).
_IN_OPTIONS = {
    "NAME": ("database", "db"),
    "USER": ("user",),
    "PASSWORD": ("password", "passwd"),
    "HOST": ("host", "unix_socket"),
}
_DEFAULTS = {"HOST": "the local socket for HOST", "USER": "the login user for USER"}
_EXAMPLE = (
    "on PythonAnywhere, as its Databases tab shows them: NAME '<username>$<dbname>', "
    "USER '<username>', HOST '<username>.mysql.pythonanywhere-services.com'"
)


def _is_set(db: Mapping[str, Any], key: str) -> bool:
    options = db.get("OPTIONS") or {}
    return bool(db.get(key)) or any(options.get(word) for word in _IN_OPTIONS[key])


def _is_a_path(name: Any) -> bool:
    if isinstance(name, os.PathLike):
        return True
    text = str(name)
    return "/" in text or "\\" in text or text.endswith((".sqlite3", ".sqlite", ".db"))


def _listed(words: Sequence[str]) -> str:
    """``A, B and C``."""
    return ", ".join(words[:-1]) + (" and " if len(words) > 1 else "") + words[-1]


def _keys(alias: str, keys: Sequence[str]) -> str:
    """``DATABASES['default']['NAME'], ['USER'] and ['HOST']``."""
    return f"DATABASES[{alias!r}]" + _listed([f"[{key!r}]" for key in keys])


def half_switched(alias: str, db: Mapping[str, Any], vendor: str) -> Finding | None:
    """E025 when a MySQL entry's NAME is a path or empty; else W026 when it has no HOST or no
    USER; else None. ``db`` is the alias's settings dict, ``vendor`` its connection's."""
    if vendor != "mysql":
        return None
    name = db.get("NAME")
    from_file = bool((db.get("OPTIONS") or {}).get("read_default_file"))
    engine = f"DATABASES[{alias!r}] has the MySQL ENGINE {db.get('ENGINE')!r}"
    unset = [key for key in ("USER", "PASSWORD", "HOST") if not _is_set(db, key)]
    if name and _is_a_path(name):
        problem = f"NAME is the file path {str(name)!r}, as SQLite uses"
    elif not from_file and not _is_set(db, "NAME"):
        problem = "NAME is empty"
    else:
        local = [key for key in ("HOST", "USER") if key in unset and not from_file]
        if not local:
            return None
        return findings.connects_locally(
            f"{engine} and no {_listed(local)}",
            _listed([_DEFAULTS[key] for key in local]),
            f"Set {_keys(alias, local)} ({_EXAMPLE}; 'localhost' and your MySQL user for a "
            "server on this machine).",
        )
    unset = [] if from_file else unset
    missing = (
        f", and {_listed(unset)} {'is' if len(unset) == 1 else 'are'} not set" if unset else ""
    )
    return findings.half_switched(
        f"{engine} but {problem}{missing}",
        f"Set {_keys(alias, ['NAME', *unset])} to your MySQL database's ({_EXAMPLE}).",
    )
