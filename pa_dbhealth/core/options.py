"""pa_dbhealth's options (``PA_DBHEALTH``): each declared once, validated here for every face.

Django reads them from ``settings.PA_DBHEALTH``, Flask from ``app.config["PA_DBHEALTH"]``,
the command line from its flags; all pass the raw mapping to :func:`problems` (one line per
mistake, naming the key) and :func:`effective` (valid values as given, defaults for the
rest, so a bad value never breaks a request: the faces report it instead).
"""

from __future__ import annotations

import difflib
import math
import os
import reprlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

SETTING_NAME = "PA_DBHEALTH"

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


def _whole(low: int, high: int) -> Validator:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            return f"must be a whole number from {low} to {high}"
        return None

    return check


def _seconds(low: float, high: float, *, above: bool = False) -> Validator:
    def check(value: Any) -> str | None:
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if (
            not number
            or not math.isfinite(value)
            or value > high
            or value < low
            or (above and value == low)
        ):
            lower = f"> {low:g}" if above else f">= {low:g}"
            return f"must be a number of seconds {lower} and <= {high:g}"
        return None

    return check


def _optional(check: Validator) -> Validator:
    def check_optional(value: Any) -> str | None:
        problem = None if value is None else check(value)
        return None if problem is None else f"must be None or {problem.removeprefix('must be ')}"

    return check_optional


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


def _registry_dir(value: Any) -> str | None:
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


def option(default: Any, validate: Validator, help: str) -> Any:
    """One option: its default, its validator and the help its error messages quote."""
    return field(default=default, metadata={"validate": validate, "help": help})


DAY = 86400


@dataclass(frozen=True)
class Options:
    """The options and, as an instance, their effective values (see :func:`effective`)."""

    SERVER_IDLE_TIMEOUT: int = option(
        300,
        _whole(1, 365 * DAY),
        "Seconds after which the server drops an idle connection, used when the "
        "server cannot be asked (PythonAnywhere: 300).",
    )
    CONNECTION_LIMIT: int = option(
        3,
        _whole(1, 100_000),
        "Connections the account may hold at once, used when the server cannot be "
        "asked (PythonAnywhere: 3).",
    )
    TIMEOUT_MARGIN: int = option(
        20,
        _whole(0, 365 * DAY),
        "Seconds before the server's idle timeout at which a connection counts as stale.",
    )
    WORKERS: int | None = option(
        None,
        _optional(_whole(1, 100_000)),
        "Concurrent web workers (processes x threads); None detects uWSGI's.",
    )
    TASK_CONNECTIONS: int = option(
        0,
        _whole(0, 100_000),
        "Connections held by scheduled and always-on tasks besides the web workers.",
    )
    HEALTH_TOKEN: str | None = option(
        None, _token, "Bearer token that unlocks the health view's full body."
    )
    HEALTH_CONNECT_TIMEOUT: float = option(
        3,
        _seconds(0, 60, above=True),
        "Seconds the health view waits for a database connection, and as long again for "
        "its answer.",
    )
    CONNECT_RETRY: float = option(
        5.0,
        _seconds(0, 300),
        "Seconds a connect refused by the connection cap keeps being retried.",
    )
    HANDOFF: bool = option(
        True,
        _bool,
        "Hand a connection that is done to a thread of the same process waiting for the cap.",
    )
    LINE: bool = option(
        True,
        _bool,
        "Wait at the cap in one first-come, first-served line with the other processes of "
        "this host (a System V semaphore), instead of each waiter polling the server.",
    )
    PARK: bool = option(
        False,
        _bool,
        "Keep a connection the retrying backend is done with (end of a request, even with "
        "CONN_MAX_AGE = 0) open for the next request of the process, and give it up as soon "
        "as any process of the host waits in the line, or after the idle limit; one token "
        "always stays free. Needs LINE.",
    )
    TRACK_ORIGINS: bool | None = option(
        None,
        _optional_bool,
        "Record the stack that opened each connection (None: only when DEBUG).",
    )

    REGISTRY_DIR: str | bool | None = option(
        None,
        _registry_dir,
        "Directory of the registry of holders (which process holds each connection): None "
        "for $PA_DBHEALTH_REGISTRY_DIR or ~/.cache/pa_dbhealth/holders, False to turn it off.",
    )

    def tracks_origins(self, debug: bool) -> bool:
        """Whether to record opening stacks: the option, or ``debug`` when it is None."""
        return debug if self.TRACK_ORIGINS is None else self.TRACK_ORIGINS


@dataclass(frozen=True)
class Option:
    default: Any
    validate: Validator
    help: str


OPTIONS: dict[str, Option] = {
    f.name: Option(f.default, f.metadata["validate"], f.metadata["help"]) for f in fields(Options)
}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the options; ``key`` is None when the whole setting is wrong."""

    kind: str  # "type", "unknown" or "value"
    key: str | None
    message: str
    hint: str


def _did_you_mean(key: Any) -> str:
    text = str(key)
    if text.upper() in OPTIONS:
        return f"Did you mean {text.upper()!r}?"
    close = difflib.get_close_matches(text.upper(), list(OPTIONS), n=1)
    return f"Did you mean {close[0]!r}?" if close else f"Known keys: {', '.join(sorted(OPTIONS))}."


def problems(raw: Any, name: str = SETTING_NAME) -> list[Problem]:
    """Everything wrong with the raw options (``name`` is what the face calls them), one
    entry per key. None means "not set": nothing wrong."""
    if raw is None:
        return []
    if not isinstance(raw, Mapping):
        return [
            Problem(
                "type",
                None,
                f"{name} must be a dict, not {type(raw).__name__}.",
                f"Set {name} = {{}} or remove it to use the defaults.",
            )
        ]
    found = []
    for key, value in raw.items():
        if key not in OPTIONS:
            message = f"{name} has an unknown key {shown(key)}."
            found.append(Problem("unknown", str(key), message, _did_you_mean(key)))
            continue
        option = OPTIONS[key]
        problem = option.validate(value)
        if problem:
            found.append(
                Problem(
                    "value",
                    key,
                    f"{name}[{key!r}] = {shown(value)} {problem}.",
                    f"{option.help} Default: {option.default!r}.",
                )
            )
    return found


def effective(raw: Any) -> Options:
    """The options to run with: valid values from ``raw``, defaults for anything else."""
    given: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    values = {}
    for key, option in OPTIONS.items():
        value = given.get(key, option.default)
        values[key] = option.default if option.validate(value) else value
    return Options(**values)
