"""The test site's WSGI application, for uWSGI (``tests/processes.py``)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testsite.process_settings")

application = get_wsgi_application()
