"""A local MariaDB/MySQL server with PythonAnywhere's limits: ``python -m pa_dbhealth.sandbox``.

From Python::

    from pa_dbhealth import sandbox

    info = sandbox.start(wait_timeout=5)
    DATABASES = {"default": info.database_settings()}
    ...
    sandbox.restart(info)  # after a kill -9: the same data, accounts and port
    sandbox.stop(info)
"""

from pa_dbhealth.sandbox.info import SandboxError, SandboxInfo
from pa_dbhealth.sandbox.process import find_binaries, free_port
from pa_dbhealth.sandbox.server import default_dir, restart, start, stop

__all__ = [
    "SandboxError",
    "SandboxInfo",
    "default_dir",
    "find_binaries",
    "free_port",
    "restart",
    "start",
    "stop",
]
