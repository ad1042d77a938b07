"""Settings of the pa_dbhealth demo: a small site wired with everything the app offers."""

import os
from pathlib import Path

from demo_project.database import default_database

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "demo-only-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "pa_dbhealth",
    "demo_project.emissores",
]

MIDDLEWARE = [
    "pa_dbhealth.middleware.ConnectionHygieneMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "demo_project.urls"
WSGI_APPLICATION = "demo_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": default_database(BASE_DIR)}
# PythonAnywhere drops idle connections after 300 s: keep persistent connections well below.
DATABASES["default"]["CONN_MAX_AGE"] = int(os.environ.get("DB_CONN_MAX_AGE", "0"))
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

PA_DBHEALTH = {
    "SERVER_IDLE_TIMEOUT": 300,
    "CONNECTION_LIMIT": 3,
    "TIMEOUT_MARGIN": 20,
    # runserver's threads, as a PythonAnywhere web app with 3 workers: dbcheck shows the budget.
    "WORKERS": int(os.environ.get("DEMO_WORKERS", "3")),
    # The health view's full body (/dbhealth/) needs "Authorization: Bearer <token>".
    # The default is for the demo only: set DJANGO_HEALTH_TOKEN to a secret of your own.
    "HEALTH_TOKEN": os.environ.get("DJANGO_HEALTH_TOKEN", "demo-health-token-not-secret"),
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
STATIC_URL = "static/"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"pa_dbhealth": {"handlers": ["console"], "level": "INFO"}},
}
