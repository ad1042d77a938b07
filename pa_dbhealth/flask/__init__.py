"""pa_dbhealth for Flask (Flask-SQLAlchemy 3.x, or a plain SQLAlchemy engine). Needs no
Django::

    from pa_dbhealth.flask import DbHealth, engine_options

    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(app.config["SQLALCHEMY_DATABASE_URI"])
    DbHealth(app, db=db)
"""

from pa_dbhealth.flask.extension import DbHealth
from pa_dbhealth.sqlalchemy.recommend import engine_options

__all__ = ["DbHealth", "engine_options"]
