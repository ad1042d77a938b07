"""Settings for pa_dbhealth: ``settings.PA_DBHEALTH`` is read here and nowhere else.

Every key is optional. Values are read when asked for (never at import time), so
``override_settings`` works. Runtime readers are tolerant: a bad value falls back to
its default, and the ``pa_dbhealth.E001``/``E002``/``E003`` system checks report it.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

SETTING_NAME = "PA_DBHEALTH"

Validator = Callable[[Any], "str | None"]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _int_at_least(minimum: int) -> Validator:
    def check(value: Any) -> str | None:
        if not _is_int(value) or value < minimum:
            return f"must be a whole number >= {minimum}"
        return None

    return check


def _optional(check: Validator, what: str) -> Validator:
    def check_optional(value: Any) -> str | None:
        if value is None:
            return None
        problem = check(value)
        return f"must be None or {what}" if problem else None

    return check_optional


def _number_at_least(minimum: float, *, strict: bool = False) -> Validator:
    def check(value: Any) -> str | None:
        if not _is_number(value) or value < minimum or (strict and value == minimum):
            relation = ">" if strict else ">="
            return f"must be a number {relation} {minimum:g}"
        return None

    return check


def _token(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        return "must be None or a non-empty string"
    if len(value) < 16:
        return "is too short to be a secret: use at least 16 characters"
    return None


def _bool(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be True or False"


def _optional_bool(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    return "must be True, False or None (None follows DEBUG)"


@dataclass(frozen=True)
class Option:
    default: Any
    validate: Validator
    help: str


OPTIONS: dict[str, Option] = {
    "SERVER_IDLE_TIMEOUT": Option(
        300,
        _int_at_least(1),
        "Seconds after which the server drops an idle connection, used when the "
        "server cannot be asked (PythonAnywhere: 300).",
    ),
    "CONNECTION_LIMIT": Option(
        3,
        _int_at_least(1),
        "Connections the account may hold at once, used when the server cannot be "
        "asked (PythonAnywhere: 3).",
    ),
    "TIMEOUT_MARGIN": Option(
        20,
        _int_at_least(0),
        "Seconds before the server's idle timeout at which a connection counts as stale.",
    ),
    "WORKERS": Option(
        None,
        _optional(_int_at_least(1), "a whole number >= 1"),
        "Concurrent web workers (processes x threads); None detects uWSGI's.",
    ),
    "TASK_CONNECTIONS": Option(
        0,
        _int_at_least(0),
        "Connections held by scheduled and always-on tasks besides the web workers.",
    ),
    "HEALTH_TOKEN": Option(
        None,
        _token,
        "Bearer token that unlocks the health view's full body.",
    ),
    "HEALTH_CONNECT_TIMEOUT": Option(
        3,
        _number_at_least(0, strict=True),
        "Seconds the health view waits for a database connection.",
    ),
    "CONNECT_RETRY": Option(
        5.0,
        _number_at_least(0),
        "Seconds a connect refused by the connection cap keeps being retried.",
    ),
    "HANDOFF": Option(
        True,
        _bool,
        "Hand a connection that is done to a thread of the same process waiting for the cap.",
    ),
    "TRACK_ORIGINS": Option(
        None,
        _optional_bool,
        "Record the stack that opened each connection (None: only when DEBUG).",
    ),
}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with ``PA_DBHEALTH``; ``key`` is None when the whole setting is wrong."""

    kind: str  # "type", "unknown" or "value"
    key: str | None
    message: str
    hint: str


def _raw() -> Any:
    return getattr(settings, SETTING_NAME, None)


def problems() -> list[Problem]:
    """Everything wrong with ``settings.PA_DBHEALTH``, one entry per key."""
    raw = _raw()
    if raw is None:
        return []
    if not isinstance(raw, Mapping):
        return [
            Problem(
                "type",
                None,
                f"{SETTING_NAME} must be a dict, not {type(raw).__name__}.",
                f"Set {SETTING_NAME} = {{}} or remove it to use the defaults.",
            )
        ]
    found = []
    for key in raw:
        if key not in OPTIONS:
            close = difflib.get_close_matches(str(key), list(OPTIONS), n=1)
            hint = (
                f"Did you mean {close[0]!r}?"
                if close
                else f"Known keys: {', '.join(sorted(OPTIONS))}."
            )
            found.append(
                Problem("unknown", str(key), f"{SETTING_NAME} has an unknown key {key!r}.", hint)
            )
            continue
        problem = OPTIONS[key].validate(raw[key])
        if problem:
            found.append(
                Problem(
                    "value",
                    key,
                    f"{SETTING_NAME}[{key!r}] = {raw[key]!r} {problem}.",
                    f"{OPTIONS[key].help} Default: {OPTIONS[key].default!r}.",
                )
            )
    return found


@dataclass(frozen=True)
class DBHealthSettings:
    SERVER_IDLE_TIMEOUT: int
    CONNECTION_LIMIT: int
    TIMEOUT_MARGIN: int
    WORKERS: int | None
    TASK_CONNECTIONS: int
    HEALTH_TOKEN: str | None
    HEALTH_CONNECT_TIMEOUT: float
    CONNECT_RETRY: float
    HANDOFF: bool
    TRACK_ORIGINS: bool | None

    @property
    def track_origins(self) -> bool:
        """Whether to record opening stacks: the setting, or DEBUG when it is None."""
        if self.TRACK_ORIGINS is None:
            return bool(settings.DEBUG)
        return self.TRACK_ORIGINS


@lru_cache(maxsize=1)
def get_settings() -> DBHealthSettings:
    """The effective settings: valid values as given, defaults for the rest."""
    raw = _raw()
    given: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    values = {}
    for key, option in OPTIONS.items():
        value = given.get(key, option.default)
        values[key] = option.default if option.validate(value) else value
    return DBHealthSettings(**values)


def _clear_cache(*, setting: str, **kwargs: Any) -> None:
    if setting == SETTING_NAME:
        get_settings.cache_clear()


setting_changed.connect(_clear_cache, dispatch_uid="pa_dbhealth.conf.clear_cache")
