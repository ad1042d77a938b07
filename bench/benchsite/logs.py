import logging


class OneLine(logging.Formatter):
    """A log line with the exception's last line instead of its traceback."""

    def formatException(self, ei: object) -> str:
        exc = ei[1] if isinstance(ei, tuple) else None
        return f"| {type(exc).__name__}: {exc}"

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace("\n", " ")
