"""The retrying backend's account, as its line (:mod:`pa_dbhealth.core.line_connect`) and
the registry of holders key it."""

from __future__ import annotations

from typing import Any

from pa_dbhealth.core.registry import server_key


def account_of(settings_dict: dict[str, Any]) -> tuple[str, str]:
    """``(server, account)`` of a DATABASES entry, as the line and the registry key them."""
    server = server_key("mysql", settings_dict.get("HOST"), settings_dict.get("PORT"))
    return server, str(settings_dict.get("USER") or "")
