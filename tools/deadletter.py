"""What the dead-letter redrive decides about each message: decodable or why not, its age bucket, move or stay,
and the run's report (`python -m tools.redrive`, tools/redrive.py, does the pulling and publishing)."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

import orjson

from shared.envelope import PoisonMessage
from shared.sink.decoding import decode_message

DEAD_LETTER_PREFIX = "CloudPubSubDeadLetter"  # Pub/Sub's attributes on a dead-lettered message
DECODABLE = "decodable"
AGE_BUCKETS = ((timedelta(hours=1), "<1h"), (timedelta(days=1), "1h-1d"), (timedelta(days=7), "1d-7d"))
OLDEST_BUCKET = ">=7d"
BUCKETS = (*(name for _, name in AGE_BUCKETS), OLDEST_BUCKET)
_DURATION = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> timedelta:
    """`90s`, `30m`, `2h`, `1d`, `1w`, or several at once (`1h30m`); ValueError otherwise."""
    cleaned = text.strip().lower()
    if not cleaned or _DURATION.sub("", cleaned):
        raise ValueError(f"not a duration: {text!r} (examples: 30m, 2h, 1d, 1h30m)")
    return timedelta(seconds=sum(int(n) * _UNITS[unit] for n, unit in _DURATION.findall(cleaned)))


def republish_attributes(attributes: Mapping[str, str]) -> dict[str, str]:
    """Every attribute except Pub/Sub's dead-letter ones (they describe the old failure)."""
    return {k: v for k, v in attributes.items() if not k.startswith(DEAD_LETTER_PREFIX)}


def classify(data: bytes, attributes: Mapping[str, str]) -> str:
    """DECODABLE if the sink can load the message, else the reason code (shared.envelope.POISON_REASONS) it
    would only fail with again: the sink's own decoding step decides."""
    try:
        decode_message(data, attributes, "redrive")
    except PoisonMessage as exc:
        return exc.reason
    return DECODABLE


def age_bucket(age: timedelta) -> str:
    """The age bucket a dry run counts a message in."""
    for limit, name in AGE_BUCKETS:
        if age < limit:
            return name
    return OLDEST_BUCKET


def content_key(data: bytes, attributes: Mapping[str, str]) -> str:
    """What a message would be re-published as: the same key means the same message, dead-lettered again."""
    digest = hashlib.sha256(data)
    digest.update(orjson.dumps(republish_attributes(attributes), option=orjson.OPT_SORT_KEYS))
    return digest.hexdigest()


def decide(reason: str, age: timedelta, older_than: timedelta | None, dry_run: bool, room: int | None,
           again: bool) -> str:
    """'move', or why the message stays: poison reason, too_young, over_max, dead_lettered_again, dry_run."""
    if reason != DECODABLE:
        return reason
    if again:
        return "dead_lettered_again"
    if older_than is not None and age < older_than:
        return "too_young"
    if room is not None and room <= 0:
        return "over_max"
    return "dry_run" if dry_run else "move"


@dataclass
class Report:
    """What a run saw and did."""

    subscription: str
    topic: str
    dry_run: bool
    pulled: int = 0
    moved: int = 0
    would_move: int = 0
    counts: dict[str, Counter] = field(default_factory=dict)  # reason -> age bucket -> messages
    left: Counter = field(default_factory=Counter)  # why a message stays in the dead-letter subscription
    failed_publishes: int = 0
    failed_acks: int = 0
    errors: list[str] = field(default_factory=list)
    stopped_by_signal: bool = False

    def count(self, reason: str, bucket: str) -> None:
        self.pulled += 1
        self.counts.setdefault(reason, Counter())[bucket] += 1

    @property
    def ok(self) -> bool:
        return not (self.failed_publishes or self.failed_acks or self.errors)

    def as_json(self) -> dict:
        return {"subscription": self.subscription, "topic": self.topic, "dryRun": self.dry_run,
                "pulled": self.pulled, "moved": self.moved, "wouldMove": self.would_move,
                "counts": {reason: dict(buckets) for reason, buckets in sorted(self.counts.items())},
                "left": dict(sorted(self.left.items())), "failedPublishes": self.failed_publishes,
                "failedAcks": self.failed_acks, "errors": self.errors, "stoppedBySignal": self.stopped_by_signal}

    def text(self) -> str:
        lines = [f"dead-letter subscription {self.subscription} -> topic {self.topic}"
                 + (" (dry run: nothing moved)" if self.dry_run else "")]
        width = max([len("reason"), *(len(r) for r in self.counts)])
        lines.append("  ".join([f"{'reason':<{width}}", *(f"{b:>6}" for b in BUCKETS), f"{'total':>6}"]))
        for reason in sorted(self.counts, key=lambda r: (r != DECODABLE, r)):
            buckets = self.counts[reason]
            lines.append("  ".join([f"{reason:<{width}}", *(f"{buckets[b]:>6}" for b in BUCKETS),
                                    f"{sum(buckets.values()):>6}"]))
        left = ", ".join(f"{why} {n}" for why, n in sorted(self.left.items())) or "none"
        if self.dry_run:
            lines.append(f"pulled {self.pulled}; would move {self.would_move}; would leave: {left}")
        else:
            lines.append(f"pulled {self.pulled}; moved {self.moved}; left in the dead-letter subscription: {left}")
        if self.failed_publishes or self.failed_acks:
            lines.append(f"FAILED: {self.failed_publishes} publishes not confirmed (left in the dead-letter "
                         f"subscription), {self.failed_acks} acks failed (published: a second run re-publishes "
                         "them, deduplicated)")
        lines += [f"ERROR: {e}" for e in self.errors]
        if self.stopped_by_signal:
            lines.append("stopped by a signal: run it again to continue")
        return "\n".join(lines)
