"""pa_dbhealth: keep Django sites healthy on hosts that cap and kill MySQL connections."""

__version__ = "0.1.0"
