"""pa_dbhealth's options (``PA_DBHEALTH``): each declared once, validated here for every face.

Django reads them from ``settings.PA_DBHEALTH``, Flask from ``app.config["PA_DBHEALTH"]``,
the command line from its flags; all pass the raw mapping to :func:`problems` (one line per
mistake, naming the key) and :func:`effective` (valid values as given, defaults for the
rest, so a bad value never breaks a request: the faces report it instead).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from pa_dbhealth.core.option_values import (
    SHORT_TOKEN,
    Validator,
    boolean,
    multiplexers,
    optional,
    optional_bool,
    registry_dir,
    seconds,
    short_token,
    shown,
    token,
    token_text,
    whole,
)

__all__ = [
    "OPTIONS",
    "SETTING_NAME",
    "Option",
    "Options",
    "Problem",
    "effective",
    "problems",
    "shown",
    "token_text",
]

SETTING_NAME = "PA_DBHEALTH"


def _as_given(value: Any) -> Any:
    return value


def option(
    default: Any,
    validate: Validator,
    help: str,
    *,
    advise: Validator | None = None,
    clean: Callable[[Any], Any] = _as_given,
) -> Any:
    """One option: its default, its validator, the help its messages quote, what is worth a
    warning in a valid value (``advise``), and how a valid value is used (``clean``)."""
    metadata = {"validate": validate, "help": help, "advise": advise, "clean": clean}
    return field(default=default, metadata=metadata)


DAY = 86400


@dataclass(frozen=True)
class Options:
    """The options and, as an instance, their effective values (see :func:`effective`)."""

    SERVER_IDLE_TIMEOUT: int = option(
        300,
        whole(1, 365 * DAY),
        "Seconds after which the server drops an idle connection, used when the "
        "server cannot be asked (PythonAnywhere: 300).",
    )
    CONNECTION_LIMIT: int = option(
        3,
        whole(1, 100_000),
        "Connections the account may hold at once, used when the server cannot be "
        "asked (PythonAnywhere: 3).",
    )
    TIMEOUT_MARGIN: int = option(
        20,
        whole(0, 365 * DAY),
        "Seconds before the server's idle timeout at which a connection counts as stale.",
    )
    WORKERS: int | None = option(
        None,
        optional(whole(1, 100_000)),
        "Concurrent web workers (processes x threads); None detects uWSGI's.",
    )
    TASK_CONNECTIONS: int = option(
        0,
        whole(0, 100_000),
        "Connections held by scheduled and always-on tasks besides the web workers.",
    )
    HEALTH_TOKEN: str | None = option(
        None,
        token,
        f"Bearer token that unlocks the health view's full body and the status page: "
        f"{SHORT_TOKEN} characters or more, random (python -c 'import secrets; "
        f"print(secrets.token_urlsafe(32))').",
        advise=short_token,
        clean=token_text,
    )
    HEALTH_CONNECT_TIMEOUT: float = option(
        3,
        seconds(0, 60, above=True),
        "Seconds the health view waits for a database connection, and as long again for "
        "its answer.",
    )
    CONNECT_RETRY: float = option(
        5.0,
        seconds(0, 300),
        "Seconds a connect refused by the connection cap keeps being retried.",
    )
    HANDOFF: bool = option(
        True,
        boolean,
        "Hand a connection that is done to a thread of the same process waiting for the cap.",
    )
    LINE: bool = option(
        True,
        boolean,
        "Wait at the cap in one first-come, first-served line with the other processes of "
        "this host (a System V semaphore), instead of each waiter polling the server.",
    )
    PARK: bool = option(
        False,
        boolean,
        "Keep a connection the retrying backend is done with (end of a request, even with "
        "CONN_MAX_AGE = 0) open for the next request of the process, and give it up as soon "
        "as any process of the host waits in the line, or after the idle limit; one is "
        "given back when the site idles with no slot free. Needs LINE.",
    )
    TRACK_ORIGINS: bool | None = option(
        None,
        optional_bool,
        "Record the stack that opened each connection (None: only when DEBUG).",
    )

    REGISTRY_DIR: str | bool | None = option(
        None,
        registry_dir,
        "Directory of the registry of holders (which process holds each connection): None "
        "for $PA_DBHEALTH_REGISTRY_DIR or ~/.cache/pa_dbhealth/holders, False to turn it off.",
    )

    PIN_RULES: tuple[str, ...] = option(
        ("proxysql", "mysql-router", "maxscale", "pgbouncer"),
        multiplexers,
        "The multiplexers whose rules the audit of what pins a connection applies "
        "(proxysql, mysql-router, maxscale, pgbouncer); an empty list turns it off.",
    )

    def pin_rules(self) -> tuple[str, ...]:
        """PIN_RULES as a tuple (one name may be given as a string)."""
        rules = self.PIN_RULES
        return (rules,) if isinstance(rules, str) else tuple(rules)

    def tracks_origins(self, debug: bool) -> bool:
        """Whether to record opening stacks: the option, or ``debug`` when it is None."""
        return debug if self.TRACK_ORIGINS is None else self.TRACK_ORIGINS


@dataclass(frozen=True)
class Option:
    default: Any
    validate: Validator
    help: str
    advise: Validator | None
    clean: Callable[[Any], Any]


OPTIONS: dict[str, Option] = {f.name: Option(f.default, **f.metadata) for f in fields(Options)}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the options; ``key`` is None when the whole setting is wrong."""

    kind: str  # "type", "unknown", "value" (errors) or "weak" (a warning: the value is used)
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
        kind, problem = "value", option.validate(value)
        if not problem and option.advise is not None:
            kind, problem = "weak", option.advise(value)
        if problem:
            hint = f"{option.help} Default: {option.default!r}."
            found.append(
                Problem(kind, key, f"{name}[{key!r}] = {_shown(key, value)} {problem}.", hint)
            )
    return found


def _shown(key: str, value: Any) -> str:
    """The value as a message shows it: a token never (it is a secret)."""
    if key == "HEALTH_TOKEN" and isinstance(value, str) and value.strip():
        return "'...'"
    return shown(value)


def effective(raw: Any) -> Options:
    """The options to run with: valid values from ``raw``, defaults for anything else."""
    given: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    values = {}
    for key, option in OPTIONS.items():
        value = given.get(key, option.default)
        values[key] = option.default if option.validate(value) else option.clean(value)
    return Options(**values)
