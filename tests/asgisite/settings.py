"""The suite's site as ``tests/test_asgi.py`` serves it under uvicorn, in a process of its own.

testsite's settings, pointed at the suite's capped server (``ASGISITE_DATABASE``: a JSON
``DATABASES`` entry) with ``CONN_MAX_AGE = 60``; ``ASGISITE_MIDDLEWARE=0`` leaves
pa_dbhealth's middleware out (the control run); ``ASGISITE_GC=0`` turns the garbage
collector off, so that nothing but pa_dbhealth can close a connection left in an ended
thread (the collector would, at a moment nobody chooses).
"""

import gc
import json
import os

from testsite.settings import *  # noqa: F403
from testsite.settings import MIDDLEWARE

DATABASES = {"default": {**json.loads(os.environ["ASGISITE_DATABASE"]), "CONN_MAX_AGE": 60}}
ROOT_URLCONF = "asgisite.urls"
if os.environ.get("ASGISITE_GC") == "0":
    gc.disable()
if os.environ.get("ASGISITE_MIDDLEWARE") == "0":
    MIDDLEWARE = [m for m in MIDDLEWARE if not m.startswith("pa_dbhealth.")]
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {
        "pa_dbhealth": {"level": "WARNING", "handlers": ["stderr"]},
        "django.request": {"level": "ERROR", "handlers": ["stderr"]},
    },
}
