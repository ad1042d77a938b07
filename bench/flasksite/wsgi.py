"""The Flask demo (``flask_demo``) as ``bench/load.py`` serves it under uWSGI, plus the
benchmark's two views; ``FLASK_DEMO_ENGINE`` and ``FLASK_DEMO_DBHEALTH`` choose the
configuration, ``BENCH_HOLD`` how long the db view holds its connection,
``BENCH_CONNECT_RETRY`` (when set) the demo's ``CONNECT_RETRY``."""

import logging
import os
from typing import Any

from benchsite.logs import OneLine
from flask import Config, Flask, Response
from sqlalchemy import text


class BenchConfig(Config):
    """``app.config`` that adds ``BENCH_CONNECT_RETRY`` to the ``PA_DBHEALTH`` the demo
    sets: the demo builds its app and its engine at import, with options of its own."""

    def __setitem__(self, key: str, value: Any) -> None:
        retry = os.environ.get("BENCH_CONNECT_RETRY")
        if key == "PA_DBHEALTH" and retry:
            value = {**value, "CONNECT_RETRY": float(retry)}
        super().__setitem__(key, value)


Flask.config_class = BenchConfig  # before the demo makes its app


# One line per failed request (the driver's error, no traceback) and per retry / give-up /
# handoff, so load.py can count them in the uWSGI log.
handler = logging.StreamHandler()
handler.setFormatter(OneLine("%(name)s %(message)s"))
logging.getLogger().addHandler(handler)
logging.getLogger("flask_demo.app").setLevel(logging.ERROR)
logging.getLogger("pa_dbhealth").setLevel(logging.INFO)  # the rest as a site runs
logging.getLogger("pa_dbhealth.sqlalchemy").setLevel(logging.DEBUG)

from flask_demo.app import app, db  # noqa: E402 (after the logging it must use)

HOLD = float(os.environ.get("BENCH_HOLD", "0.02"))


def hold() -> Response:
    """Holds a database connection for BENCH_HOLD seconds: one ``SELECT SLEEP()``."""
    db.session.execute(text("SELECT SLEEP(:hold)"), {"hold": HOLD}).scalar()
    return Response(b"ok", mimetype="text/plain")


def nodb() -> Response:
    return Response(b"ok", mimetype="text/plain")


app.add_url_rule("/db/", "bench_db", hold)
app.add_url_rule("/nodb/", "bench_nodb", nodb)
application = app
