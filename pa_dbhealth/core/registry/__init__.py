"""The registry of holders: which process holds each of the account's connections, readable
by any process of the account without a database connection.

When the cap is full, nothing can ask the server who holds the account's connections; the
processes that hold them can say so themselves. Every process with pa_dbhealth writes one
small JSON file, ``<host>-<pid>.json``, in a directory all processes of the account share
(on PythonAnywhere the home directory is shared by web workers, consoles, scheduled and
always-on tasks): ``REGISTRY_DIR``, else ``$PA_DBHEALTH_REGISTRY_DIR``, else
``~/.cache/pa_dbhealth/holders``. For each connection it holds: the server's id for it, the
server and account, the thread, when it was opened and last used, the first frame of user
code that opened it (the whole stack when the face records origins), and whether it is a
probable leak, why, and the fix in words. The directory and files are private
(:mod:`pa_dbhealth.core.private_files`).

Writing, from a face's tracker (framework-free: the SQLAlchemy face publishes its pool's
checkouts the same way)::

    from pa_dbhealth.core import registry

    where = registry.directory(options.REGISTRY_DIR)        # None: turned off
    registry.publisher.publish(where, [
        registry.HeldConnection(
            server=registry.server_key("mysql", host, port), account=user, vendor="mysql",
            id=dbapi.thread_id(), name="default", thread=threading.current_thread().name,
            opened_at=time.time(), last_used=None, caller="app/jobs.py:18 in poll",
            leak=registry.Leak(registry.THREAD, why="...", fix="..."),
        ),
    ], source="sqlalchemy")

``publish`` replaces the list of that ``source`` (each face publishes its own; the process's
file holds them all). It writes only when the list changed (a
change of last use alone: at most every :data:`REFRESH_EVERY` seconds), atomically; an
empty list removes the file, and so does the process's exit (``atexit``, and uWSGI's
``uwsgi.atexit`` for its workers). A face decides *when* to publish, so a request pays
nothing: not for a connection opened and closed within one request (a connection a request
opened is published once it outlives the request, or has been held :data:`PUBLISH_AFTER`
seconds). A write that fails (a read-only or full disk, a directory that is not private)
costs one debug log line and that directory is not tried again for :data:`RETRY_AFTER`
seconds; ``publish`` never raises. (The publisher lives in
:mod:`pa_dbhealth.core.registry.publishing`; who a process is, in
:mod:`pa_dbhealth.core.registry.process`.)

Reading, from a face's listing::

    found = registry.read(where)                  # files of dead processes of this host pruned
    mine = found.holders(server, account)         # [Holder], for one server and account
    by_id = registry.join(snapshot.connections, mine)     # {server connection id: Holder}
    registry.prune_absent(found, server, account, listed_ids)   # other hosts' dead entries

Entries are what each process last wrote: a reader cannot know the connections of processes
without pa_dbhealth (a MySQL console, another app), and an entry may lag behind its process.
Files are read defensively (:mod:`pa_dbhealth.core.registry.files`): malformed, oversized
or hostile ones are skipped, and a read keeps to a budget of time and bytes, this host's
entries first (:mod:`pa_dbhealth.core.registry.reader`). ``read``, ``join`` and
``prune_absent`` live in :mod:`pa_dbhealth.core.registry.found`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pa_dbhealth.core import private_files
from pa_dbhealth.core.registry.files import HeldConnection, Leak, ProcessEntry
from pa_dbhealth.core.registry.found import ABSENT_AFTER, Found, Holder, join, prune_absent, read
from pa_dbhealth.core.registry.publishing import (
    REFRESH_EVERY,
    RETRY_AFTER,
    Publisher,
    publisher,
)
from pa_dbhealth.core.registry.reader import MAX_BYTES

__all__ = [
    "ABSENT_AFTER",
    "ENVIRONMENT_VARIABLE",
    "IMPORT",
    "KEPT_THREAD",
    "MAX_BYTES",
    "MODULE_SESSION",
    "PUBLISH_AFTER",
    "REFRESH_EVERY",
    "RETRY_AFTER",
    "THREAD",
    "Found",
    "HeldConnection",
    "Holder",
    "Leak",
    "ProcessEntry",
    "Publisher",
    "directory",
    "join",
    "prune_absent",
    "publisher",
    "read",
    "refusal",
    "server_key",
]

ENVIRONMENT_VARIABLE = "PA_DBHEALTH_REGISTRY_DIR"
DEFAULT_DIRECTORY = Path("~/.cache/pa_dbhealth/holders")
OFF_WORDS = ("off", "false", "0", "no")
PUBLISH_AFTER = 5.0  # seconds a face may hold back a connection a request opened
# The thread of a connection PARK keeps between requests (pa_dbhealth.core.parking): parked,
# or in use by one of the process's requests for a moment.
KEPT_THREAD = "kept between requests (PARK)"

# Kinds of probable leak (``Leak.kind``); each face words the fix in its own terms.
IMPORT = "import"  # opened while a module was being imported
THREAD = "thread"  # held by a thread that nothing closes
MODULE_SESSION = "module_session"  # a module-level SQLAlchemy session

DEFAULT_PORTS = {"mysql": 3306, "postgresql": 5432}


def directory(setting: Any) -> Path | None:
    """The registry's directory for a ``REGISTRY_DIR`` value: False turns it off; None means
    ``$PA_DBHEALTH_REGISTRY_DIR`` (``off`` turns it off) or ``~/.cache/pa_dbhealth/holders``.
    An invalid value (which the face's checks report) counts as None."""
    if setting is False:
        return None
    if isinstance(setting, str | os.PathLike) and os.fspath(setting).strip():
        chosen = Path(os.path.expanduser(os.fspath(setting)))
        if chosen.is_absolute():
            return chosen
    from_environment = os.environ.get(ENVIRONMENT_VARIABLE, "").strip()
    if from_environment.lower() in OFF_WORDS:
        return None
    if from_environment:
        chosen = Path(os.path.expanduser(from_environment))
        if chosen.is_absolute():
            return chosen
    return DEFAULT_DIRECTORY.expanduser()


def server_key(vendor: str, host: Any, port: Any) -> str:
    """``host:port`` of a server as every face writes it, so entries of one server match:
    the host lower-cased (``localhost`` when empty), the vendor's default port when none;
    a Unix socket's path as it is."""
    name = str(host or "localhost").strip().lower()
    if name.startswith("/"):
        return name
    try:
        number = int(port) if port not in (None, "") else DEFAULT_PORTS.get(vendor)
    except (TypeError, ValueError):
        number = None
    return f"{name}:{number}" if number else name


def refusal(where: Path | None) -> str | None:
    """Why the registry at ``where`` cannot be used (a directory that is not private, not
    this user's, not readable), or None: usable, not there yet (the first writer creates
    it), or turned off."""
    if where is None:
        return None
    try:
        with private_files.private_directory(where, create=False):
            return None
    except FileNotFoundError:
        return None
    except OSError as exc:
        return str(exc)
