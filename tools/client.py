"""Client for instances and operators: `python -m tools.client send|generate` (see README)."""

from __future__ import annotations

import argparse
import gzip
import os
import random
import socket
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import requests

from tools import wire
from tools.cli import dispatch
from tools.generate import generate

RETRY_STATUSES = {408, 429, 502, 503, 504}
FORMATS = ("json", "protobuf")
LICENSE_ENV = "TELEMETRY_LICENSE_KEY"  # a key on a command line would show in ps and shell history
AUTH_STATUSES = {401, 403}


@dataclass
class Report:
    """What happened to every event given to send()."""

    sent: int = 0
    succeeded: int = 0
    refused: Counter = field(default_factory=Counter)
    warnings: Counter = field(default_factory=Counter)  # accepted events the gateway changed, per code
    gave_up: int = 0
    requests: int = 0
    retries: int = 0

    @property
    def ok(self) -> bool:
        """Every event ended succeeded or refused as non-retryable (and reported)."""
        return self.gave_up == 0

    def summary(self) -> str:
        """Human-readable summary."""
        refused = ", ".join(f"{n} {reason}" for reason, n in self.refused.most_common()) or "none"
        warnings = ", ".join(f"{n} {code}" for code, n in self.warnings.most_common()) or "none"
        return (f"sent {self.sent} events in {self.requests} requests ({self.retries} retried): "
                f"{self.succeeded} succeeded (warnings: {warnings}), refused: {refused}, gave up on {self.gave_up}")


class Sender:
    """Sends events in gzip'd batches; re-sends only what failed with a retryable outcome."""

    def __init__(self, url: str, credential: str, instance_id: str, *, external_url: str | None = None,
                 identifier: dict | None = None,
                 batch_size: int = 500, max_time_s: float = 300.0, timeout_s: float = 30.0,
                 backoff_base_s: float = 0.5, backoff_cap_s: float = 30.0,
                 session: requests.Session | None = None, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic, rng: random.Random | None = None,
                 body_format: str = "json") -> None:
        self.url = url.rstrip("/") + "/v1/events" if not url.rstrip("/").endswith("/v1/events") else url
        if body_format not in FORMATS:
            raise ValueError(f"body_format must be one of {FORMATS}")
        self.protobuf = body_format == "protobuf"
        content_type = wire.CONTENT_TYPE if self.protobuf else "application/json"
        self.headers = {"Authorization": f"Bearer {credential}", "Content-Type": content_type,
                        "Content-Encoding": "gzip"}  # a license key, or a managed service's ID token
        if self.protobuf:
            self.headers["Accept"] = wire.CONTENT_TYPE
        self.identifier = identifier or {"licensedInstance": {"instanceId": instance_id, **(
            {"externalUrl": external_url} if external_url else {})}}
        self.batch_size = batch_size
        self.max_time_s = max_time_s
        self.timeout_s = timeout_s
        self.backoff = (backoff_base_s, backoff_cap_s)
        self.session = session or requests.Session()
        self.sleep, self.clock = sleep, clock
        self.rng = rng or random.Random()

    def _post(self, batch: list) -> requests.Response | None:
        metadata = {"requestId": f"{self.rng.getrandbits(64):016x}", "identifier": self.identifier}
        if self.protobuf:  # the batch holds (event, its Event message) pairs
            raw = wire.encode_body(metadata, [message for _, message in batch])
        else:
            raw = orjson.dumps({"metadata": metadata, "events": batch})
        try:
            return self.session.post(self.url, data=gzip.compress(raw, 5), headers=self.headers,
                                     timeout=self.timeout_s)
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError):
            return None  # no answer, or a connection broken mid-answer (a killed worker): re-send the batch

    def _wait(self, attempt: int, retry_after: str | None, deadline: float) -> bool:
        """Sleep before a retry (Retry-After, else exponential backoff with full jitter); False if out of time."""
        base, cap = self.backoff
        delay = self.rng.uniform(0, min(cap, base * 2 ** attempt))
        if retry_after and retry_after.strip().isdigit():
            delay = float(retry_after) + self.rng.uniform(0, base)
        if self.clock() + delay > deadline:
            return False
        self.sleep(delay)
        return True

    def send(self, events: Iterable, progress: Callable[[int], None] | None = None) -> Report:
        """Send all events; returns the report. Never re-sends a succeeded or non-retryable event."""
        pending = deque(events)
        report = Report(sent=len(pending))
        if self.protobuf:
            pending = self._as_messages(pending, report)
        deadline = self.clock() + self.max_time_s
        attempt = 0
        done = progress or (lambda n: None)
        while pending:
            size = min(self.batch_size, len(pending))
            batch = [pending.popleft() for _ in range(size)]
            report.requests += 1
            resp = self._post(batch)
            status = resp.status_code if resp is not None else None
            if status == 200:
                attempt = 0
                doc = wire.decode_answer(resp.content) if self.protobuf else resp.json()
                done(self._answered(batch, doc, report, pending))
            elif status == 413 and size > 1:  # too large: split, both halves go first
                pending.extendleft(reversed(batch))
                self.batch_size = max(1, size // 2)
            elif status is None or status in RETRY_STATUSES or status >= 500:
                pending.extendleft(reversed(batch))
                report.retries += 1
                if not self._wait(attempt, resp.headers.get("Retry-After") if resp is not None else None, deadline):
                    break
                attempt += 1
            else:
                done(self._refused(batch, resp, report, pending))
        report.gave_up = len(pending)
        return report

    @staticmethod
    def _as_messages(events: deque, report: Report) -> deque:
        """(event, Event message) pairs; an event with no protobuf form is refused here (not_encodable)."""
        pairs: deque = deque()
        for event in events:
            try:
                pairs.append((event, wire.event_message(event)))
            except wire.NotEncodable:
                report.refused["not_encodable"] += 1
        return pairs

    @staticmethod
    def _answered(batch: list, doc: dict, report: Report, pending: deque) -> int:
        """Count a 200's successes and final refusals, queue its retryable failures; return events done."""
        report.succeeded += len(doc["succeededEvents"])
        report.warnings.update(w["code"] for w in doc.get("warnings") or ())  # absent before this release
        again = []
        for failure in doc["failedEvents"]:
            if failure.get("retryable"):
                again.append(batch[failure["index"]])
            else:
                report.refused[failure["reason"]] += 1
        pending.extend(again)
        report.retries += len(again)
        return len(batch) - len(again)

    @staticmethod
    def _refused(batch: list, resp: requests.Response, report: Report, pending: deque) -> int:
        """A final whole-request refusal; on 401/403 every later batch would be refused too. Return events done."""
        code = _error_code(resp)
        finished = len(batch)
        if resp.status_code in AUTH_STATUSES:
            finished += len(pending)
            pending.clear()
        report.refused[code] += finished
        return finished


def _error_code(resp: requests.Response) -> str:
    if resp.headers.get("Content-Type", "").startswith(wire.CONTENT_TYPE):
        return wire.error_reason(resp.content) or f"http_{resp.status_code}"
    try:
        return resp.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return f"http_{resp.status_code}"


def read_events(path: str) -> tuple[list, Counter]:
    """Events from a JSONL file (or - for stdin); unparsable lines are counted, not sent."""
    stream = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
    events, bad = [], Counter()
    with stream:
        for line in stream:
            if not line.strip():
                continue
            try:
                events.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                bad["unparsable_line"] += 1
    return events, bad


def read_license_key(path: str | None) -> str:
    """The license key from --license-key-file, else $TELEMETRY_LICENSE_KEY: never from the command line."""
    key = Path(path).read_text().strip() if path else os.environ.get(LICENSE_ENV, "").strip()
    if not key:
        raise SystemExit(f"send needs a license key: --license-key-file FILE or ${LICENSE_ENV}")
    return key


def service_credential(args: argparse.Namespace) -> tuple[str, dict]:
    """A managed service's ID token (--id-token-file, else the ambient credentials') and its identifier."""
    if args.id_token_file:
        token = Path(args.id_token_file).read_text().strip()
    else:  # the service account this runs as, via google-auth (metadata server, or a key file)
        import google.auth.transport.requests
        from google.oauth2 import id_token

        token = id_token.fetch_id_token(google.auth.transport.requests.Request(), args.audience or args.url)
    service = {"serviceId": args.service_id, **({"serviceEnvironment": args.service_environment}
                                                if args.service_environment else {})}
    return token, {"managedService": service}


def cmd_send(args: argparse.Namespace) -> int:
    """send FILE.jsonl: exit 0 only if every event ended succeeded or refused as non-retryable."""
    credential, identifier = service_credential(args) if args.service_id else (
        read_license_key(args.license_key_file), None)
    events, bad = read_events(args.file)
    sender = Sender(args.url, credential, args.instance_id, external_url=args.external_url, identifier=identifier,
                    batch_size=args.batch_size, max_time_s=args.max_time, body_format=args.format)
    from tqdm import tqdm

    with tqdm(total=len(events), unit="ev", disable=not sys.stderr.isatty(), file=sys.stderr) as bar:
        report = sender.send(events, bar.update)
    report.refused.update(bad)
    report.sent += sum(bad.values())
    print(report.summary())
    return 0 if report.ok else 1


def cmd_generate(args: argparse.Namespace) -> int:
    """generate: realistic synthetic events as JSONL on stdout."""
    out = sys.stdout.buffer
    for _, event in generate(args.count, args.instances, args.days, args.seed):
        out.write(orjson.dumps(event) + b"\n")
    return 0


def parser() -> argparse.ArgumentParser:
    """The CLI."""
    p = argparse.ArgumentParser(prog="python -m tools.client", description=__doc__)
    sub = p.add_subparsers(dest="verb", required=True)
    s = sub.add_parser("send", help="send events (JSONL) to a gateway", allow_abbrev=False)  # no --license-key
    s.add_argument("file", help="JSONL file of events, or - for stdin")
    s.add_argument("--url", required=True, help="gateway base URL (…/v1/events is added)")
    s.add_argument("--license-key-file", help=f"file holding the license key (default: ${LICENSE_ENV})")
    s.add_argument("--service-id", help="send as this managed service (with a Google ID token, not a license)")
    s.add_argument("--service-environment", help="the managed service's environment, e.g. prod")
    s.add_argument("--id-token-file", help="file holding the service's ID token (default: the ambient "
                   "credentials' token, via google-auth)")
    s.add_argument("--audience", help="audience of the ambient ID token (default: --url)")
    s.add_argument("--instance-id", default=f"cli-{socket.gethostname()}")
    s.add_argument("--external-url")
    s.add_argument("--batch-size", type=int, default=500)
    s.add_argument("--format", choices=FORMATS, default="json",
                   help="body encoding: JSON, or protobuf (RecordEventsBody, answered in protobuf)")
    s.add_argument("--max-time", type=float, default=300.0, help="give up retrying after this many seconds")
    s.set_defaults(run=cmd_send)
    g = sub.add_parser("generate", help="write synthetic events as JSONL")
    g.add_argument("--count", type=int, required=True)
    g.add_argument("--instances", type=int, default=3, help="instances the events vary over (versions, clocks)")
    g.add_argument("--days", type=int, default=3, help="spread events over the last D days")
    g.add_argument("--seed", type=int)
    g.set_defaults(run=cmd_generate)
    return p


if __name__ == "__main__":
    sys.exit(dispatch(parser()))
