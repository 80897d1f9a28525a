"""The log's JSON lines (``STORMUI_LOG_FORMAT=json``): one object per event, for a shipper.

A few lines rather than a dependency: the fields are the standard library's, and what a
shipper needs is that every line parses alone, tracebacks included.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message"}``, with ``exc_info`` (the traceback's text)
    when the event has one, and ``stack_info`` when asked for."""

    def format(self, record: logging.LogRecord) -> str:
        event = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            event["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            event["exc_info"] = record.exc_text
        if record.stack_info:
            event["stack_info"] = self.formatStack(record.stack_info)
        # json.dumps escapes newlines: a traceback stays on its line
        return json.dumps(event, ensure_ascii=False, default=str)
