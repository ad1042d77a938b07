"""A Flask + Flask-SQLAlchemy app on PostgreSQL through PgBouncer (``PGBOUNCER_URL``), for
the live PgBouncer tests under uWSGI."""

import os

from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import text

from pa_dbhealth.flask import DbHealth

app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["PGBOUNCER_URL"]
# PgBouncer 1.18 in transaction mode cannot share prepared statements (E034 says so).
app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"connect_args": {"prepare_threshold": None}}
db = SQLAlchemy(app)
DbHealth(app, db=db)


@app.get("/rows/")
def rows() -> str:
    query = text("SELECT count(*), pg_sleep(0.005) FROM pg_class WHERE relname <> :x")
    with db.session.begin():
        return str(db.session.execute(query, {"x": "x"}).first()[0])
