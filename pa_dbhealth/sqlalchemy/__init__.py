"""pa_dbhealth for SQLAlchemy 2.x engines (MySQL/MariaDB with mysqlclient or PyMySQL,
PostgreSQL with psycopg). Needs no Django.

- :func:`audit`: the engine's pool against the live server's idle timeout and the
  account's cap, in ``dbcheck``'s findings;
- :func:`engine_options`: the ``create_engine`` arguments that fit the live server;
- :func:`install`: pool events that replace dead, idle-too-long or dirty connections at
  checkout (no round trip), retry a connect refused by the cap, and log probable leaks.
"""

from pa_dbhealth.sqlalchemy import tracker
from pa_dbhealth.sqlalchemy.audit import audit, report
from pa_dbhealth.sqlalchemy.events import install, installed
from pa_dbhealth.sqlalchemy.health import check, probe
from pa_dbhealth.sqlalchemy.recommend import engine_options

__all__ = [
    "audit",
    "check",
    "engine_options",
    "install",
    "installed",
    "probe",
    "report",
    "tracker",
]
