"""Log configuration for entry points only: JSON lines to stdout (containers) or plain text on a terminal."""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime


class JsonLines(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and the exception, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(level: str | None = None) -> None:
    """Configure the root logger; ``BT_LOG_FORMAT=json|text`` (default: json unless stdout is a TTY)."""
    handler = logging.StreamHandler(sys.stdout)
    fmt = os.environ.get("BT_LOG_FORMAT") or ("text" if sys.stdout.isatty() else "json")
    if fmt == "json":
        handler.setFormatter(JsonLines())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level or os.environ.get("BT_LOG_LEVEL", "INFO"))
    for noisy in ("pika", "httpx", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
