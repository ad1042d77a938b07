"""What a valid ``PA_DBHEALTH`` value is: one validator per kind of option, each returning
what is wrong in words (``"must be ..."``) or None, and never raising, whatever it is given
(an int of 5000 digits, NaN, a hostile ``__repr__``). :mod:`pa_dbhealth.core.options`
declares which option uses which.
"""

from __future__ import annotations

import math
import os
import reprlib
from collections.abc import Callable
from typing import Any

Validator = Callable[[Any], "str | None"]


_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 60


def shown(value: Any) -> str:
    """``repr(value)`` that stays short and never raises (an int of 5000 digits, say)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        digits = int(value.bit_length() * math.log10(2)) + 1
        return f"{'-' if value < 0 else ''}<an integer of about {digits} digits>"
    try:
        return _SHORT.repr(value)
    except Exception:  # a hostile __repr__
        return f"<a {type(value).__name__}>"


def whole(low: int, high: int) -> Validator:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            return f"must be a whole number from {low} to {high}"
        return None

    return check


def seconds(low: float, high: float, *, above: bool = False) -> Validator:
    def check(value: Any) -> str | None:
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if (
            not number
            or (isinstance(value, float) and not math.isfinite(value))  # an int is finite,
            or value > high  # and compares exactly, even past what a float can hold
            or value < low
            or (above and value == low)
        ):
            lower = f"> {low:g}" if above else f">= {low:g}"
            return f"must be a number of seconds {lower} and <= {high:g}"
        return None

    return check


def optional(check: Validator) -> Validator:
    def check_optional(value: Any) -> str | None:
        problem = None if value is None else check(value)
        return None if problem is None else f"must be None or {problem.removeprefix('must be ')}"

    return check_optional


SHORT_TOKEN = 16  # characters: a shorter HEALTH_TOKEN can be guessed


def token(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        return "must be None or a non-empty string"
    return None


def short_token(value: Any) -> str | None:
    if isinstance(value, str) and len(value.strip()) < SHORT_TOKEN:
        return (
            f"has {len(value.strip())} characters (spaces around it do not count): too few "
            f"to be a secret"
        )
    return None


def token_text(value: Any) -> Any:
    """A token as it is compared: without the spaces and newlines around it (a token read
    from a file ends with one), in the setting and in what a visitor types alike."""
    return value.strip() if isinstance(value, str) else value


def boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be True or False"


def optional_bool(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    return "must be True, False or None (None follows DEBUG)"


def multiplexers(value: Any) -> str | None:
    from pa_dbhealth.core.pins import MULTIPLEXERS

    names = (value,) if isinstance(value, str) else value
    if not isinstance(names, list | tuple) or any(n not in MULTIPLEXERS for n in names):
        return f"must be a list of names from {', '.join(MULTIPLEXERS)} (empty: no audit)"
    return None


def registry_dir(value: Any) -> str | None:
    if value is None or value is False:
        return None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value.strip():
        return "must be None (the default place), False (off) or a directory's path"
    if "\0" in value:
        return "must be a path without NUL characters"
    if not os.path.isabs(os.path.expanduser(value)):
        return (
            "must be an absolute path (or start with ~): each process has its own current directory"
        )
    return None
