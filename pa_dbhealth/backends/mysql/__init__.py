"""``django.db.backends.mysql`` whose connect waits for a free connection instead of failing.

Set ``"ENGINE": "pa_dbhealth.backends.mysql"``; everything else (``OPTIONS`` included) is
Django's MySQL backend unchanged.
"""
