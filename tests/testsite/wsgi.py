"""The test site's WSGI application, for uWSGI (``tests/processes.py``)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testsite.process_settings")

application = get_wsgi_application()

if os.environ.get("TESTSITE_CONNECT_AT_IMPORT"):  # a master that connects before it forks
    from django.db import connection

    connection.ensure_connection()
