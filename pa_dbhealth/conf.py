"""Settings for pa_dbhealth: ``settings.PA_DBHEALTH`` is read here and nowhere else.

Every key is optional; each is declared once, in :mod:`pa_dbhealth.core.options`, with the
validation every face shares. Values are read when asked for (never at import time), so
``override_settings`` works. Runtime readers are tolerant: a bad value falls back to its
default, and the ``pa_dbhealth.E001``/``E002``/``E003`` system checks (and ``dbcheck``)
report it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

from pa_dbhealth.core.options import SETTING_NAME, Options, Problem, effective
from pa_dbhealth.core.options import problems as option_problems

__all__ = ["SETTING_NAME", "Options", "get_settings", "problems", "track_origins"]


def _raw() -> Any:
    return getattr(settings, SETTING_NAME, None)


def problems() -> list[Problem]:
    """Everything wrong with ``settings.PA_DBHEALTH``, one entry per key."""
    return option_problems(_raw())


@lru_cache(maxsize=1)
def get_settings() -> Options:
    """The effective settings: valid values as given, defaults for the rest."""
    return effective(_raw())


def track_origins() -> bool:
    """Whether to record the stack that opens each connection: TRACK_ORIGINS, or DEBUG."""
    return get_settings().tracks_origins(bool(settings.DEBUG))


def _clear_cache(*, setting: str, **kwargs: Any) -> None:
    if setting == SETTING_NAME:
        get_settings.cache_clear()


setting_changed.connect(_clear_cache, dispatch_uid="pa_dbhealth.conf.clear_cache")
