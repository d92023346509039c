"""RFC 3339 timestamps, parsed one way for events, rows and licenses."""

from __future__ import annotations

from datetime import datetime

_fromisoformat = datetime.fromisoformat


def parse_rfc3339(value: object) -> datetime:
    """A zone-aware datetime (nanosecond digits are cut to microseconds), or ValueError saying why."""
    if type(value) is not str:
        raise ValueError("an RFC 3339 string is required")
    try:
        parsed = _fromisoformat(value)
    except ValueError:
        raise ValueError(f"not an RFC 3339 timestamp: {value[:64]!r}") from None
    if parsed.tzinfo is None:
        raise ValueError("a time zone is required (e.g. Z)")
    return parsed


def micros(moment: datetime) -> int:
    """Microseconds since the epoch (a BigQuery TIMESTAMP as the Storage Write API takes it)."""
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def stamp_micros(seconds: int, nanos: int) -> int:
    """A protobuf Timestamp's microseconds since the epoch (digits below the microsecond dropped)."""
    return seconds * 1_000_000 + nanos // 1000
