"""Findings about pa_dbhealth's own setup: its settings, its middleware, its registry
directory and PARK.
"""

from __future__ import annotations

from collections.abc import Iterable

from pa_dbhealth.core.findings.base import Finding, Level
from pa_dbhealth.core.options import Problem


def settings_not_a_mapping(message: str, hint: str) -> Finding:
    return Finding("pa_dbhealth.E001", Level.ERROR, message, hint)


def settings_unknown_key(message: str, hint: str) -> Finding:
    return Finding("pa_dbhealth.E002", Level.ERROR, message, hint)


def settings_bad_value(message: str, hint: str) -> Finding:
    return Finding("pa_dbhealth.E003", Level.ERROR, message, hint)


def settings_weak_value(message: str, hint: str) -> Finding:
    """A value that works but should not be kept: a HEALTH_TOKEN anyone could guess."""
    return Finding("pa_dbhealth.W029", Level.WARNING, message, hint)


_SETTINGS_FINDINGS = {
    "type": settings_not_a_mapping,
    "unknown": settings_unknown_key,
    "value": settings_bad_value,
    "weak": settings_weak_value,
}


def settings_findings(problems: Iterable[Problem]) -> list[Finding]:
    """E001 (not a dict), E002 (an unknown key), E003 (a bad value), W029 (a weak value):
    one per problem of ``core.options.problems``."""
    return [_SETTINGS_FINDINGS[p.kind](p.message, p.hint) for p in problems]


def middleware_missing(path: str) -> Finding:
    return Finding(
        "pa_dbhealth.I013",
        Level.INFO,
        f"{path} is not in MIDDLEWARE: stale connections are not closed before a request "
        "uses them and a full connection cap answers 500 instead of 503.",
        f"Add {path!r} near the top of MIDDLEWARE.",
    )


def margin_clamped(setting: str, margin: float, timeout: int, limit: float) -> Finding:
    return Finding(
        "pa_dbhealth.W016",
        Level.WARNING,
        f"{setting} = {margin:g} is not smaller than the server's idle timeout of {timeout} s: "
        f"connections count as stale after {limit:g} s (half the timeout) instead.",
        f"Set {setting} below {timeout}, e.g. {max(timeout // 10, 1)}.",
    )


def registry_refused(where: str, why: str, setting: str, default: str | None) -> Finding:
    """The registry's directory ``where`` cannot be used (``why``). ``default``: the default
    place to suggest, None when ``where`` is it. Never advises changing a directory's mode:
    the refused one may be shared (/tmp)."""
    if default:
        fix = (
            f"Remove {setting} to use the default, {default}, or set it to another new "
            f"directory only this account uses"
        )
    else:
        fix = f"Set {setting} to a new directory only this account uses"
    return Finding(
        "pa_dbhealth.E028",
        Level.ERROR,
        f"The registry of holders is off: {why}. Every connection shows as not tracked, and "
        f"at a full cap nothing can say which process holds one.",
        f"{fix} (pa_dbhealth creates it, private, on first use). Leave the mode of {where} "
        f"as it is: other users or programs may need it.",
    )


def park_without_effect(reason: str, fix: str) -> Finding:
    return Finding(
        "pa_dbhealth.W039",
        Level.WARNING,
        f"PA_DBHEALTH['PARK'] = True, but {reason}: no connection is ever parked, and each "
        "request still pays a connect.",
        fix,
    )
