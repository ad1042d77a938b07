"""The test site's settings in processes the tests start (uWSGI, manage.py, python -c).

``TESTSITE_DATABASES`` (JSON) is the suite's ``DATABASES`` and ``TESTSITE_SETTINGS`` (a JSON
object) sets more settings; ``tests/processes.py`` sets both.
"""

import json
import os

from testsite.settings import *  # noqa: F403

DATABASES = json.loads(os.environ["TESTSITE_DATABASES"])
globals().update(json.loads(os.environ.get("TESTSITE_SETTINGS", "{}")))
