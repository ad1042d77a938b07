"""Settings of the benchmark site, chosen by ``bench/load.py`` through the environment.

``BENCH_ENGINE``, ``BENCH_CONN_MAX_AGE``, ``BENCH_PA_DBHEALTH`` (1: the app),
``BENCH_MIDDLEWARE`` (1: and its middleware), ``BENCH_REGISTRY`` (0: its registry of holders
turned off), ``BENCH_LINE`` (0: its line off), ``BENCH_PARK`` (1: PARK), ``BENCH_HOLD``
(seconds the db view holds its connection) and the sandbox's ``DB_*`` variables.
"""

import os

SECRET_KEY = "bench-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "benchsite.urls"
USE_TZ = True
WSGI_APPLICATION = "benchsite.wsgi.application"

PA = os.environ.get("BENCH_PA_DBHEALTH") == "1"
BENCH_HOLD = float(os.environ.get("BENCH_HOLD", "0.02"))

INSTALLED_APPS = ["pa_dbhealth"] if PA else []
# CommonMiddleware (in every default Django project) sets Content-Length, also on the 500
# pages of refused connects, so uWSGI's router keeps the client's connection alive.
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
if PA and os.environ.get("BENCH_MIDDLEWARE", "1") == "1":
    MIDDLEWARE.insert(0, "pa_dbhealth.middleware.ConnectionHygieneMiddleware")

DATABASES = {
    "default": {
        "ENGINE": os.environ.get("BENCH_ENGINE", "django.db.backends.mysql"),
        "NAME": os.environ.get("DB_NAME", "app"),
        "USER": os.environ.get("DB_USER", "app"),
        "PASSWORD": os.environ.get("DB_PASSWORD", ""),
        "HOST": os.environ.get("DB_HOST", "127.0.0.1"),
        "PORT": os.environ.get("DB_PORT", "9"),
        "CONN_MAX_AGE": int(os.environ.get("BENCH_CONN_MAX_AGE", "0")),
        "OPTIONS": {"charset": "utf8mb4"},
    }
}
if "postgresql" in DATABASES["default"]["ENGINE"]:  # bench/pgbouncer.py
    DATABASES["default"]["OPTIONS"] = {}
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
if PA:
    PA_DBHEALTH = {
        "CONNECT_RETRY": float(os.environ.get("BENCH_CONNECT_RETRY", "5")),
        "HEALTH_TOKEN": "bench-only-token-for-the-wait-figures",  # loadbench/metrics.py
    }
    if os.environ.get("BENCH_REGISTRY", "1") == "0":
        PA_DBHEALTH["REGISTRY_DIR"] = False
    if os.environ.get("BENCH_LINE", "1") == "0":
        PA_DBHEALTH["LINE"] = False
    if os.environ.get("BENCH_PARK", "0") == "1":
        PA_DBHEALTH["PARK"] = True

# One line per failed request (the driver's error, no traceback) and per retry / give-up,
# so load.py can count 1226 errors and retries in the uWSGI log; the rest of pa_dbhealth
# at INFO, as a site runs (its DEBUG lines, one per parked connection passed or given up,
# would be a cost plain Django does not pay).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"line": {"()": "benchsite.logs.OneLine", "format": "%(name)s %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "line"}},
    "loggers": {
        "django.request": {"handlers": ["stderr"], "level": "ERROR", "propagate": False},
        "pa_dbhealth": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "pa_dbhealth.backends.mysql": {"level": "DEBUG"},
    },
}
