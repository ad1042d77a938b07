"""The core both faces share: imports no Django, no Flask and no SQLAlchemy.

Faces (the Django app, ``pa_dbhealth.sqlalchemy``, ``pa_dbhealth.flask``, ``python -m
pa_dbhealth``) ask the core; the core asks ``vendors`` for server facts on a DB-API
connection. Nothing here imports a face.
"""
