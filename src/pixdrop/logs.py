"""Log output: plain text, or one JSON object per line (``--log-format``).

A JSON line has ``time`` (RFC 3339, UTC), ``level``, ``logger`` and ``message``; the
``request_id`` of the request being served when the record was made (any logger, not only
the access log: ``REQUEST_ID`` follows the request's task); the fields an access-log record
carries (``ACCESS_FIELDS``); and ``exc`` with the traceback, if any. Nothing else of the
record is copied: a value reaches the log only if it was put in one of these fields, so
headers (``Authorization``), delete tokens and query strings (presigned signatures) never do.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Literal, TextIO

__all__ = ["ACCESS_FIELDS", "REQUEST_ID", "JsonFormatter", "log_format_for"]

LogFormat = Literal["auto", "json", "text"]

#: The id of the request the current task serves (set by ``http.middleware``).
REQUEST_ID: ContextVar[str | None] = ContextVar("pixdrop_request_id", default=None)

#: Extra fields of an access-log record, in the order a JSON line lists them.
ACCESS_FIELDS = (
    "client",
    "method",
    "path",
    "route",
    "status",
    "bytes_in",
    "bytes_out",
    "duration_ms",
    "upload_id",
    "image_id",
)


def log_format_for(wanted: LogFormat, stream: TextIO = sys.stderr) -> Literal["json", "text"]:
    """``auto`` is text on a terminal and JSON otherwise (a log collector reads it)."""
    if wanted != "auto":
        return wanted
    return "text" if stream.isatty() else "json"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
        if request_id:
            line["request_id"] = request_id
        for name in ACCESS_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        elif record.stack_info:
            line["exc"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure(wanted: LogFormat, *, access_log: bool) -> None:
    """Log to stderr in the *wanted* format, at INFO (the access log: only if *access_log*);
    called once per process (the server, and each worker it starts)."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format_for(wanted, sys.stderr) == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # boto3 says at INFO where it found the S3 credentials: nothing an operator needs.
    for name in ("botocore", "boto3", "s3transfer"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if not access_log:
        logging.getLogger("pixdrop.access").setLevel(logging.WARNING)
