"""The request log: one `requests` row per request that reached the gateway, accepted or refused.

Rows are published apart from the events (the same topic, attribute `recordType=requests`, see
shared/envelope.py), several per message, from inside a request: the first one that ends
REQUEST_LOG_FLUSH_SECONDS after the oldest waiting row publishes them, after its own answer is built (the events'
publish is never delayed or failed by it), and at shutdown whatever still waits. No background thread: with
request-based billing (Cloud Functions gen2's default) an instance has no CPU between requests ("You shouldn't
start background threads", Cloud Run tips), so rows of an instance that gets no more requests wait for its
shutdown. A row that cannot be published waits for the next flush and is counted in the log (`request_log_failed`).
Refused requests (4xx) are recorded one by one up to a bound per client and per function instance in each
window; the rest of each client's are counted in one `suppressed` row, so a flood cannot flood the table.
Rows hold counts and codes, never an event's content, a license key or a token.
"""

from __future__ import annotations

import atexit
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

from shared import logs
from shared.envelope import encode_requests
from shared.errors import Unavailable
from shared.ingest.config import IngestConfig
from shared.ingest.publisher import Publisher

MAX_USER_AGENT_CHARS = 256
MAX_ROWS_PER_MESSAGE = 500
MAX_WAITING_ROWS = 20_000  # held while Pub/Sub is unreachable; beyond, the oldest are dropped and counted
MAX_TRACKED_CLIENTS = 10_000  # clients counted in one window; beyond, new ones share the instance's bound
EVERYONE = "*"  # the key of the instance-wide bound's suppressed row


@dataclass
class RequestFacts:
    """What handling a request learnt about it, filled in as it goes (None: not reached)."""

    format: str | None = None
    content_encoding: str | None = None
    wire_bytes: int | None = None
    body_bytes: int | None = None
    request_id: str | None = None
    caller_kind: str | None = None
    instance_id: str | None = None
    license_fingerprint: str | None = None  # a refused license's too, when the key parses (never the key)
    events: int | None = None
    accepted: int | None = None
    refused: Counter = field(default_factory=Counter)   # reason -> events
    redacted: Counter = field(default_factory=Counter)  # field -> events
    warnings: Counter = field(default_factory=Counter)  # code -> events
    earliest: int | None = None  # accepted events' timestamps, microseconds since the epoch
    latest: int | None = None


def outcome(status: int, facts: RequestFacts) -> str:
    """accepted (every event), partial, rejected (200, no event accepted), refused (4xx), failed (5xx)."""
    if status >= 500:
        return "failed"
    if status >= 400:
        return "refused"
    if facts.refused:
        return "partial" if facts.accepted else "rejected"
    return "accepted"


def _json_or_none(counts: Counter) -> dict | None:
    return dict(counts) if counts else None


def request_record(environment: str, facts: RequestFacts, status: int, error_code: str | None, received_at_us: int,
                handling_ms: float, user_agent: str | None) -> dict:
    """The record of one request: its `requests` row but inserted_at, which the sink adds."""
    return {
        "record_id": uuid.uuid4().hex, "received_at": received_at_us, "request_id": facts.request_id,
        "environment": environment, "caller_kind": facts.caller_kind,
        "instance_id": facts.instance_id, "license_fingerprint": facts.license_fingerprint,
        "status": status, "error_code": error_code, "outcome": outcome(status, facts),
        "events": facts.events, "accepted": facts.accepted, "refused": _json_or_none(facts.refused),
        "redacted": _json_or_none(facts.redacted), "warnings": _json_or_none(facts.warnings),
        "wire_bytes": facts.wire_bytes, "body_bytes": facts.body_bytes, "format": facts.format,
        "content_encoding": facts.content_encoding, "handling_ms": handling_ms,
        "earliest_event": facts.earliest, "latest_event": facts.latest,
        "user_agent": user_agent[:MAX_USER_AGENT_CHARS] if user_agent else None,
    }


@dataclass
class _Window:
    """Refused requests recorded and suppressed in the current window."""

    started: float
    total: int = 0
    per_client: Counter = field(default_factory=Counter)
    suppressed: dict[str, Counter] = field(default_factory=dict)  # client key -> error code -> requests
    about: dict[str, dict] = field(default_factory=dict)  # client key -> the identity columns of its row


class RequestLog:
    """Builds, bounds and publishes the rows of one function instance."""

    def __init__(self, config: IngestConfig, publisher: Publisher) -> None:
        self.config = config
        self.publisher = publisher
        self._lock = threading.Lock()
        self._rows: list[dict] = []
        self._window = _Window(time.monotonic())
        self._oldest: float | None = None  # when the oldest waiting row was queued (monotonic)
        self._exit_hook = False
        self._stopped = False

    def record(self, facts: RequestFacts, status: int, error_code: str | None, received_at_us: int,
               handling_ms: float, user_agent: str | None, client_ip: str | None) -> None:
        """Queue the request's row (or count it in its client's suppressed row)."""
        if not self.config.request_log:
            return
        row = request_record(self.config.environment, facts, status, error_code, received_at_us, handling_ms,
                          user_agent)
        with self._lock:
            self._roll_window(time.monotonic())
            if 400 <= status < 500 and not self._admit(facts.license_fingerprint or client_ip or "", row):
                return
            self._rows.append(row)
            if self._oldest is None:
                self._oldest = time.monotonic()
        self._at_exit()

    def flush_due(self) -> None:
        """Called at the end of each request: publish the waiting rows when the oldest has waited
        REQUEST_LOG_FLUSH_SECONDS, or a message's worth waits, or a window with suppressed rows ended."""
        with self._lock:
            oldest, waiting = self._oldest, len(self._rows)
            window_ended = (time.monotonic() - self._window.started >= self.config.request_log_window_s
                            and self._window.suppressed)
        if window_ended or (oldest is not None and (waiting >= MAX_ROWS_PER_MESSAGE or
                                                    time.monotonic() - oldest >= self.config.request_log_flush_s)):
            self.flush()

    def _admit(self, client: str, row: dict) -> bool:
        """Whether a refused request gets its own row within this window's bounds (else it is counted)."""
        window, config = self._window, self.config
        if client not in window.per_client and len(window.per_client) >= MAX_TRACKED_CLIENTS:
            client = EVERYONE
        if (window.per_client[client] < config.request_log_refused_per_client
                and window.total < config.request_log_refused_per_instance):
            window.per_client[client] += 1
            window.total += 1
            return True
        # A client over its own bound has had rows (at most REFUSED_PER_INSTANCE / REFUSED_PER_CLIENT of them
        # in a window): its own suppressed row; everything else is counted in the instance's.
        over_own = client in window.per_client and window.per_client[client] >= config.request_log_refused_per_client
        key = client if over_own else EVERYONE
        window.suppressed.setdefault(key, Counter())[row["error_code"] or str(row["status"])] += 1
        window.about.setdefault(key, {} if key == EVERYONE else {
            name: row[name] for name in ("caller_kind", "instance_id", "license_fingerprint")})
        return False

    def _roll_window(self, now: float) -> None:
        """At the end of a window: one suppressed row per client that went over a bound (lock held)."""
        window = self._window
        if now - window.started < self.config.request_log_window_s:
            return
        at = time.time_ns() // 1000  # as http.py stamps received_at
        for key, codes in window.suppressed.items():
            self._rows.append({"record_id": uuid.uuid4().hex, "received_at": at, "status": None,
                               "environment": self.config.environment, "outcome": "suppressed",
                               "suppressed": sum(codes.values()), "suppressed_by_code": dict(codes),
                               **window.about[key]})
        self._window = _Window(now)

    def _at_exit(self) -> None:
        """Publish what still waits when the process exits (gunicorn's worker ends on SIGTERM, then the interpreter:
        functions-framework imports the app in gunicorn's master, so a SIGTERM handler of ours would be replaced
        by the worker's own). The flush starts no thread, which Python 3.12+ refuses inside an atexit function."""
        if not self._exit_hook:
            with self._lock:
                if not self._exit_hook:
                    atexit.register(self._flush_at_exit)
                    self._exit_hook = True

    def _flush_at_exit(self) -> None:
        if self._stopped:
            return
        try:
            self.flush()
        except Exception as exc:  # the process is ending: say what was not published, never a traceback
            logs.warning("request_log_failed", cause=type(exc).__name__, detail=str(exc)[:300],
                         waiting=len(self._rows), dropped=0)

    def stop(self) -> None:
        """End the log: its waiting rows stay unpublished, even at exit (nothing runs in the background)."""
        self._stopped = True

    def flush(self) -> None:
        """Publish the waiting rows (and the suppressed rows of an ended window)."""
        with self._lock:
            self._roll_window(time.monotonic())
            rows, self._rows, self._oldest = self._rows, [], None
        for start in range(0, len(rows), MAX_ROWS_PER_MESSAGE):
            chunk = rows[start:start + MAX_ROWS_PER_MESSAGE]
            try:
                self.publisher.publish_now(*encode_requests(chunk, self.config.gzip_level))
            except Unavailable as exc:
                self._keep(rows[start:], exc)
                return

    def _keep(self, rows: list[dict], exc: Unavailable) -> None:
        """Publishing failed: the rows wait for the next flush, the oldest dropped beyond MAX_WAITING_ROWS."""
        with self._lock:
            self._rows[:0] = rows
            self._oldest = time.monotonic()  # tried again REQUEST_LOG_FLUSH_SECONDS from now
            dropped = max(0, len(self._rows) - MAX_WAITING_ROWS)
            del self._rows[:dropped]
        logs.warning("request_log_failed", cause=exc.code, detail=exc.message, waiting=len(rows) - dropped,
                     dropped=dropped)
