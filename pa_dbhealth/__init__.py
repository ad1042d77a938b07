"""pa_dbhealth: keep Django sites healthy on hosts that cap and kill MySQL connections."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["__version__", "fresh_connections", "keep_fresh"]

if TYPE_CHECKING:
    from pa_dbhealth.hygiene import fresh_connections, keep_fresh


def __getattr__(name: str) -> Any:
    # Imported on first use, so ``import pa_dbhealth`` (settings, the sandbox) stays cheap
    # and does not need Django configured.
    if name in ("fresh_connections", "keep_fresh"):
        from pa_dbhealth import hygiene

        return getattr(hygiene, name)
    raise AttributeError(f"module 'pa_dbhealth' has no attribute {name!r}")
