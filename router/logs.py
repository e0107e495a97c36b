"""Log setup for ``shardgate serve``: one JSON object per line (the default) or plain text.

A JSON line holds ``ts`` (UTC, ISO 8601 with milliseconds), ``level``, ``logger``, ``message``, the process id and
every field the caller passed with ``extra=`` under its own name (the fixed names of ``STYLE.md``: ``event``,
``conn_id``, ``user``, ``keyspace``, ``shard``, ``fingerprint``, ``duration_ms``, …).

What never gets in: fields whose name says they hold a secret (``password``, ``secret``, ``token``…) are replaced by
``"[redacted]"``, and an exception is written as its class and stack only: exception messages may quote a row or a
statement (a backend's duplicate-key error names the value), so they stay out of JSON logs.
"""
from __future__ import annotations

import json
import logging
import sys
import time
import traceback
from typing import Any, TextIO

__all__ = ["JsonFormatter", "TEXT_FORMAT", "configure"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Every attribute a LogRecord has before ``extra`` adds the caller's fields.
_STANDARD = frozenset(vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None))) | {"message", "asctime"}
_SECRET_WORDS = ("password", "passwd", "secret", "token", "credential", "verifier", "auth_data")
REDACTED = "[redacted]"


def _is_secret(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): (REDACTED if _is_secret(str(k)) else _plain(v)) for k, v in value.items()}
    return str(value)


class JsonFormatter(logging.Formatter):
    """``logging.Formatter`` writing one JSON object per record (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        for key, value in vars(record).items():
            if key in _STANDARD or key.startswith("_"):
                continue
            doc[key] = REDACTED if _is_secret(key) else _plain(value)
        if record.exc_info and record.exc_info[0] is not None:
            exc_type, _, tb = record.exc_info
            doc["exc_type"] = exc_type.__name__
            # The standard heading, so "Traceback" still finds it in a log; the message line is left out.
            doc["stack"] = "Traceback (most recent call last):\n" + ("".join(traceback.format_tb(tb)) if tb else "")
        return json.dumps(doc, ensure_ascii=False, default=str)


def configure(level: str = "info", fmt: str = "json", stream: TextIO | None = None) -> None:
    """Send the ``shardgate`` loggers' records to ``stream`` (stderr) at ``level``, as JSON or text lines."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))
