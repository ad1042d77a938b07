"""A site of its own for the test suite: not the demo, wired the way the README says.

``DATABASES["default"]`` is pointed at the suite's own capped server by ``conftest.py``;
until then it names a port nothing listens on, so nothing can reach a system server.
"""

SECRET_KEY = "tests-only"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "pa_dbhealth",
]

MIDDLEWARE = [
    "pa_dbhealth.middleware.ConnectionHygieneMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]

ROOT_URLCONF = "testsite.urls"

UNREACHABLE_PORT = 9  # the discard port: nothing answers a MySQL client there

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.mysql",
        "NAME": "app",
        "HOST": "127.0.0.1",
        "PORT": str(UNREACHABLE_PORT),
    },
    "sqlite": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
    "unreachable": {
        "ENGINE": "django.db.backends.mysql",
        "NAME": "app",
        "USER": "nobody",
        "PASSWORD": "",
        "HOST": "127.0.0.1",
        "PORT": str(UNREACHABLE_PORT),
        "OPTIONS": {"connect_timeout": 2},
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {"pa_dbhealth": {"level": "DEBUG", "propagate": True}},
}
