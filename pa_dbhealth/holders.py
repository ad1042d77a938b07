"""Who holds an alias's connections, for the Django face: the registry of holders
(:mod:`pa_dbhealth.core.registry`) where this process writes and from which ``dbconnections``,
the middleware's cap report and the health view read.

The tracker publishes; this module says where (``PA_DBHEALTH["REGISTRY_DIR"]``), which server
and account an alias is, how a Django probable leak is worded, and reads the registry for an
alias, joined with the server's list when there is one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.db import connections

from pa_dbhealth.core import registry
from pa_dbhealth.core.findings import Finding
from pa_dbhealth.core.registry import Leak
from pa_dbhealth.core.registry import holders as account_holders
from pa_dbhealth.core.registry.holders import AccountHolders
from pa_dbhealth.core.server_id import account_key
from pa_dbhealth.core.vendors import AccountSnapshot

__all__ = ["AliasHolders", "directory", "for_alias", "leak", "refused", "server_of"]

IMPORT_WHY = "it was opened while a module was being imported, so nothing closes it"
IMPORT_FIX = (
    "open it inside the function that needs it: move the query from the module's top level "
    "into the view, task or command that uses it"
)
THREAD_WHY = (
    "its thread {name!r} is not a request or command thread and does not use "
    "fresh_connections/keep_fresh, so nothing closes it"
)
ENDED_WHY = "its thread {name!r} ended without closing it"
THREAD_FIX = (
    "put fresh_connections around the thread's work (`with fresh_connections():` or "
    "@fresh_connections), or call django.db.connections.close_all() when it is done"
)


def leak(*, at_import: bool, thread: str, thread_alive: bool) -> Leak:
    """A Django probable leak in words: why, and the fix."""
    if at_import:
        return Leak(registry.IMPORT, IMPORT_WHY, IMPORT_FIX)
    why = THREAD_WHY if thread_alive else ENDED_WHY
    return Leak(registry.THREAD, why.format(name=thread), THREAD_FIX)


def directory() -> Path | None:
    """Where the registry is (None: turned off), from ``REGISTRY_DIR`` when settings can be
    read (a bare script without settings uses the environment and the default)."""
    from pa_dbhealth.conf import get_settings

    try:
        setting: Any = get_settings().REGISTRY_DIR
    except Exception:  # settings not configured
        setting = None
    return registry.directory(setting)


def server_of(settings_dict: dict[str, Any], vendor: str) -> tuple[str, str]:
    """``(server, account)`` of a connection's settings, as the registry and the line key
    them (``OPTIONS["unix_socket"]`` included)."""
    options = settings_dict.get("OPTIONS") or {}
    return account_key(
        vendor,
        settings_dict.get("HOST"),
        settings_dict.get("PORT"),
        settings_dict.get("USER"),
        options.get("unix_socket") if isinstance(options, dict) else None,
    )


AliasHolders = AccountHolders  # what the registry says about one alias's connections


def for_alias(alias: str, snapshot: AccountSnapshot | None = None) -> AccountHolders:
    """The registry's entries for ``alias``'s server and account; with the server's list
    (``snapshot``), joined to its rows, and other hosts' entries it contradicts pruned."""
    wrapper = connections[alias]
    server, account = server_of(wrapper.settings_dict, wrapper.vendor)
    return account_holders.read(directory(), server, account, snapshot)


def refused() -> list[Finding]:
    """E028 when the registry's directory cannot be used (``dbcheck``, ``dbconnections``,
    the health view's and the page's details)."""
    return account_holders.refused(directory(), "PA_DBHEALTH['REGISTRY_DIR']")
