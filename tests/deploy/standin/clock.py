"""Timestamps in the RFC 3339 form Google's JSON APIs use."""

from __future__ import annotations

import datetime as dt
import time


def now() -> float:
    """Seconds since the epoch."""
    return time.time()


def rfc3339(seconds: float | None = None) -> str:
    """e.g. 2024-05-10T12:00:00.123456Z."""
    moment = dt.datetime.fromtimestamp(now() if seconds is None else seconds, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
