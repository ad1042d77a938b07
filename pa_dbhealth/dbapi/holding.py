"""Raw scripts' connections in the registry of holders (``core.registry``), so
``dbconnections`` and ``python -m pa_dbhealth connections`` in any process name the script,
its thread and the line that connected, even with the cap full.

Written at once when a connection opens or closes (a script opens few), and with its last
use at most every ``registry.REFRESH_EVERY`` seconds. The directory is
``$PA_DBHEALTH_REGISTRY_DIR`` or the default; failing to write costs a debug line.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import replace
from typing import Any

from pa_dbhealth.core import registry
from pa_dbhealth.core.origins import Origins
from pa_dbhealth.core.server_id import server_id

SOURCE = "dbapi"  # this face's list in the process's file
NAME = "dbapi"  # what the listing calls the database

_origins = Origins()
_lock = threading.Lock()
_held: dict[int, registry.HeldConnection] = {}  # by id() of the pa_dbhealth connection
_refresh_at = 0.0


def opened(connection: Any, target: Any) -> None:
    caller, _ = _origins.where(sys._getframe(1))
    now = time.time()
    held = registry.HeldConnection(
        server=target.server,
        account=target.account,
        vendor="mysql",
        id=server_id(connection.raw),
        name=NAME,
        thread=threading.current_thread().name,
        opened_at=now,
        last_used=now,
        caller=caller,
    )
    with _lock:
        _held[id(connection)] = held
    publish()


def used(connection: Any) -> None:
    with _lock:
        held = _held.get(id(connection))
        if held is not None:
            _held[id(connection)] = replace(held, last_used=time.time())
    if time.monotonic() >= _refresh_at:
        publish()


def closed(connection: Any) -> None:
    with _lock:
        gone = _held.pop(id(connection), None)
    if gone is not None:
        publish()


def publish() -> None:
    """Write this process's raw connections. Never raises."""
    global _refresh_at
    _refresh_at = time.monotonic() + registry.REFRESH_EVERY
    with _lock:
        held = list(_held.values())
    registry.publisher.publish(registry.directory(None), held, source=SOURCE)
