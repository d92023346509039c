"""Structured JSON logs on stdout, in the shape Cloud Logging parses (severity, message, fields)."""

from __future__ import annotations

import sys
import threading
import time

import orjson

_lock = threading.Lock()
_context: dict = {}


def configure(**fields: object) -> None:
    """Fields added to every line (e.g. version, environment, function)."""
    _context.update(fields)


def log(severity: str, message: str, **fields: object) -> None:
    """Write one JSON line. Callers never pass license keys or private metadata."""
    line = {"severity": severity, "message": message, "time": time.time(), **_context, **fields}
    data = orjson.dumps(line, default=str) + b"\n"
    with _lock:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()


def info(message: str, **fields: object) -> None:
    """INFO line."""
    log("INFO", message, **fields)


def warning(message: str, **fields: object) -> None:
    """WARNING line."""
    log("WARNING", message, **fields)


def error(message: str, **fields: object) -> None:
    """ERROR line."""
    log("ERROR", message, **fields)
