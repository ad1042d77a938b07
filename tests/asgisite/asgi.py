"""The ASGI entry point, as ``startproject`` writes it."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "asgisite.settings")

application = get_asgi_application()
