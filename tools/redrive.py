"""Bring dead-lettered messages back to the main topic: `python -m tools.redrive [--dry-run] ...`.

Pulls the dead-letter subscription and re-publishes each message to the main topic (PUBSUB_TOPIC) with
its data byte for byte and its attributes, minus the `CloudPubSubDeadLetter*` ones Pub/Sub added (they
describe the old failure). A message is acked only after its publish is confirmed, so a kill loses
nothing: at worst a message is published twice, and `events_deduped` counts it once.

    python -m tools.redrive --dry-run              # counts per reason and age; nothing moved
    python -m tools.redrive --older-than 2h        # move what was dead-lettered more than 2 h ago
    python -m tools.redrive --max 100              # stop after 100 moved

Never moved, always left in the dead-letter subscription and counted: messages that would only fail
again (undecodable: shared.envelope.decode's PoisonMessage), messages younger than --older-than,
anything beyond --max, and a message dead-lettered again during this run after it was moved. Each
message id is handled at most once per run; what is left is released (ack deadline 0) at the end.
Exit code 0 when done, 1 when a publish (or an ack, or a pull) failed: what was not confirmed stays in
the dead-letter subscription, and running the command again continues.

Settings from the environment like the other tools: GOOGLE_CLOUD_PROJECT, PUBSUB_TOPIC, TELEMETRY_ENV,
PUBLISH_TIMEOUT_SECONDS (PUBSUB_EMULATOR_HOST locally).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import orjson
from google.api_core import exceptions as gexc
from google.api_core import retry as gretry

from shared.errors import ConfigError
from shared.ingest.config import IngestConfig
from shared.ingest.publisher import Publisher
from tools.deadletter import (
    DECODABLE,
    Report,
    age_bucket,
    classify,
    content_key,
    decide,
    parse_duration,
    republish_attributes,
)

PULL_TIMEOUT_S = 4.0  # one pull's wait; an empty subscription answers within it
IDLE_PULLS = 2  # consecutive pulls bringing nothing new: the subscription is drained
RPC_TIMEOUT_S = 10.0  # ack, modify_ack_deadline, get_subscription
RPC_RETRY = gretry.Retry(initial=0.2, maximum=2.0, multiplier=2.0, timeout=30.0,
                         predicate=gretry.if_transient_error)
ACK_CHUNK = 500  # ack ids per acknowledge / modify_ack_deadline request (well inside the 512 KB limit)
def _chunks(items: list, size: int = ACK_CHUNK) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class Redrive:
    """One run: pull, classify, publish, ack after confirmation; release what stays at the end."""

    def __init__(self, subscriber, publisher: Publisher, subscription: str, *, dry_run: bool = False,  # noqa: ANN001
                 max_moved: int | None = None, older_than: timedelta | None = None, batch: int = 50,
                 lease_s: int = 60, publish_timeout_s: float = 10.0, progress=None) -> None:  # noqa: ANN001
        self.subscriber = subscriber
        self.publisher = publisher
        self.subscription = subscription
        self.dry_run = dry_run
        self.max_moved = max_moved
        self.older_than = older_than
        self.batch = batch
        self.lease_s = lease_s
        self.publish_wait_s = publish_timeout_s + 2
        self.progress = progress or (lambda _line: None)
        self.report = Report(subscription, publisher.topic_path, dry_run)
        self.started = datetime.now(UTC)
        self.stop_requested = False
        self._moved_ids: set[str] = set()
        self._moved_content: set[str] = set()
        self._held: dict[str, tuple[str, float]] = {}  # message id -> (its latest ack id, lease end: monotonic)
        self._twins: list = []  # second copies of a message in one pull answer

    # -- the loop ---------------------------------------------------------------------------------------
    def run(self) -> Report:
        """Until drained, --max reached, a failure or a signal; what stays is released in any case."""
        try:
            idle = 0
            while not self.stop_requested and idle < IDLE_PULLS and not self._max_reached():
                self._renew_leases()
                received = self._pull()
                if received is None:
                    break
                new = self._new_messages(received)
                idle = 0 if new else idle + 1
                handled = self._handle(new) if new else True
                self._settle_twins()
                if not handled:
                    break
        finally:
            self._release()
        self.report.stopped_by_signal = self.stop_requested
        return self.report

    def _max_reached(self) -> bool:
        return not self.dry_run and self.max_moved is not None and self.report.moved >= self.max_moved

    def _pull(self) -> list | None:
        wanted = self.batch
        if not self.dry_run and self.max_moved is not None:
            wanted = max(1, min(wanted, self.max_moved - self.report.moved))
        try:
            resp = self.subscriber.pull(subscription=self.subscription, max_messages=wanted,
                                        timeout=PULL_TIMEOUT_S, retry=RPC_RETRY)
        except gexc.DeadlineExceeded:
            return []
        except gexc.GoogleAPICallError as exc:
            self.report.errors.append(f"pull failed: {type(exc).__name__}: {exc}")
            return None
        return list(resp.received_messages)

    def _new_messages(self, received: list) -> list:
        """Messages not seen in this run; a redelivery of a seen one is acked (moved) or held again (left)."""
        new, ack_again, fresh = [], [], set()
        for rm in received:
            mid = rm.message.message_id
            if mid in fresh:  # twice in one answer: settled with the first copy, after it is handled
                self._twins.append(rm)
            elif mid in self._moved_ids:
                ack_again.append(rm.ack_id)  # its publish was confirmed: an earlier ack was lost
            elif mid in self._held:
                self._held[mid] = (rm.ack_id, 0.0)  # lease lapsed and it came back: hold it again
            else:
                fresh.add(mid)
                new.append(rm)
        if ack_again:
            self._ack(ack_again)
        return new

    def _settle_twins(self) -> None:
        twins, self._twins = self._twins, []
        moved = [rm.ack_id for rm in twins if rm.message.message_id in self._moved_ids]
        if moved:
            self._ack(moved)
        released = [rm.ack_id for rm in twins if rm.message.message_id not in self._moved_ids]
        if released:
            self._lease(released, 0)  # its first copy is held, so this run will not take it again

    def _handle(self, new: list) -> bool:
        """Classify, move or hold each new message; False after a failure (stop)."""
        self._lease([rm.ack_id for rm in new])  # covers the publish wait (the subscription's may be 10 s)
        now = datetime.now(UTC)
        to_move = []
        for rm in new:
            message = rm.message
            data, attributes = bytes(message.data), dict(message.attributes)
            published = message.publish_time
            age = now - published if published else timedelta(0)
            reason = classify(data, attributes)
            self.report.count(reason, age_bucket(age))
            again = (reason == DECODABLE and published is not None and published >= self.started
                     and content_key(data, attributes) in self._moved_content)
            room = None if self.max_moved is None else (
                self.max_moved - (self.report.would_move if self.dry_run else self.report.moved + len(to_move)))
            verdict = decide(reason, age, self.older_than, self.dry_run, room, again)
            if verdict == "move":
                to_move.append((rm, data, republish_attributes(attributes)))
                continue
            if verdict == "dry_run":
                self.report.would_move += 1
            else:
                self.report.left[verdict] += 1
            self._held[message.message_id] = (rm.ack_id, time.monotonic() + self.lease_s)
        return self._move(to_move) if to_move else True

    def _move(self, to_move: list) -> bool:
        """Publish all, wait for each confirmation, ack the confirmed; the unconfirmed stay (released)."""
        futures = []
        for _rm, data, attributes in to_move:
            try:
                futures.append(self.publisher.client.publish(self.publisher.topic_path, data, **attributes))
            except Exception as exc:  # e.g. a closed client: that message stays
                futures.append(exc)
        confirmed, failed = [], []
        deadline = time.monotonic() + self.publish_wait_s
        for (rm, data, attributes), future in zip(to_move, futures, strict=True):
            try:
                if isinstance(future, Exception):
                    raise future
                future.result(timeout=max(0.1, deadline - time.monotonic()))
            except Exception as exc:  # any unconfirmed publish: the message stays
                failed.append(rm)
                self.report.errors.append(f"publish of {rm.message.message_id} not confirmed: "
                                          f"{type(exc).__name__}: {exc}"[:300])
                continue
            confirmed.append(rm)
            self._moved_content.add(content_key(data, attributes))
        acked = self._ack([rm.ack_id for rm in confirmed])
        for rm in confirmed:
            self._moved_ids.add(rm.message.message_id)
        self.report.moved += len(confirmed)
        if not acked:
            self.report.failed_acks += len(confirmed)
        for rm in failed:
            self._held[rm.message.message_id] = (rm.ack_id, time.monotonic() + self.lease_s)
        self.report.failed_publishes += len(failed)
        self.progress(f"moved {len(confirmed)} (total {self.report.moved})")
        return not failed and acked

    # -- leases -----------------------------------------------------------------------------------------
    def _lease(self, ack_ids: list[str], seconds: int | None = None) -> bool:
        seconds = self.lease_s if seconds is None else seconds
        try:
            for chunk in _chunks(ack_ids):
                self.subscriber.modify_ack_deadline(subscription=self.subscription, ack_ids=chunk,
                                                    ack_deadline_seconds=seconds, timeout=RPC_TIMEOUT_S,
                                                    retry=RPC_RETRY)
        except gexc.GoogleAPICallError as exc:
            # A lease that lapses only means a redelivery, which this run recognises by message id.
            self.progress(f"warning: modify_ack_deadline({seconds}) failed: {type(exc).__name__}: {exc}")
            return False
        return True

    def _renew_leases(self) -> None:
        """Held messages stay invisible to this run's pulls until released (never pulled twice)."""
        soon = time.monotonic() + self.lease_s / 2
        due = [mid for mid, (_, until) in self._held.items() if until < soon]
        if due and self._lease([self._held[mid][0] for mid in due]):
            until = time.monotonic() + self.lease_s
            for mid in due:
                self._held[mid] = (self._held[mid][0], until)

    def _ack(self, ack_ids: list[str]) -> bool:
        try:
            for chunk in _chunks(ack_ids):
                self.subscriber.acknowledge(subscription=self.subscription, ack_ids=chunk, timeout=RPC_TIMEOUT_S,
                                            retry=RPC_RETRY)
        except gexc.GoogleAPICallError as exc:
            self.report.errors.append(f"acknowledge failed: {type(exc).__name__}: {exc}"[:300])
            return False
        return True

    def _release(self) -> None:
        """Everything left goes back to the subscription now (ack deadline 0), for the next consumer or run."""
        ack_ids = [ack_id for ack_id, _ in self._held.values()]
        self._held.clear()
        if ack_ids:
            self._lease(ack_ids, 0)


def subscription_path(project: str, name: str) -> str:
    """A subscription id or its full path."""
    return name if name.startswith("projects/") else f"projects/{project}/subscriptions/{name}"


def default_subscription(topic: str) -> str:
    """The dead-letter pull subscription deploy.sh creates: `<DEAD_LETTER_TOPIC>-pull` = `<topic>-dead-letter-pull`."""
    return f"{topic}-dead-letter-pull"


def check_not_a_loop(subscriber, subscription: str, topic_path: str) -> str | None:  # noqa: ANN001
    """An error if the subscription reads the very topic we would publish to; None if fine or unknown."""
    try:
        source = subscriber.get_subscription(subscription=subscription, timeout=RPC_TIMEOUT_S, retry=RPC_RETRY).topic
    except gexc.NotFound:
        return f"no such subscription: {subscription}"
    except gexc.GoogleAPICallError:
        return None  # not allowed to describe it: the pull will tell
    if source == topic_path:
        return f"{subscription} is a subscription of {topic_path} itself: re-publishing there would loop"
    return None


def _count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def _duration(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parser() -> argparse.ArgumentParser:
    """The CLI's arguments."""
    p = argparse.ArgumentParser(prog="python -m tools.redrive", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--subscription", help="dead-letter pull subscription, id or full path "
                   "(default: <PUBSUB_TOPIC>-dead-letter-pull, as deploy.sh creates it)")
    p.add_argument("--dry-run", action="store_true", help="count per reason and age; move nothing")
    p.add_argument("--max", type=_count, default=None, metavar="N", help="stop after N messages moved")
    p.add_argument("--older-than", type=_duration, default=None, metavar="AGE",
                   help="move only messages dead-lettered more than AGE ago (30m, 2h, 1d, 1h30m)")
    p.add_argument("--batch", type=_count, default=50, metavar="N", help="messages per pull (default 50)")
    p.add_argument("--lease", type=int, default=60, metavar="SECONDS",
                   help="how long pulled messages stay invisible to others while this run holds them; after a "
                   "kill they return after this (default 60, 10-600)")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    return p


def main(argv: list[str] | None = None) -> int:
    """CLI entry point (settings from the same environment variables as the ingest function)."""
    p = parser()
    args = p.parse_args(argv)
    try:
        config = IngestConfig.from_env()
    except ConfigError as exc:
        p.error(str(exc))
    if not 10 <= args.lease <= 600:
        p.error("--lease must be between 10 and 600 seconds")
    if args.lease < config.publish_timeout_s + 5:
        p.error(f"--lease must exceed PUBLISH_TIMEOUT_SECONDS ({config.publish_timeout_s:g}) by 5 s at least")
    from google.cloud import pubsub_v1  # clients created only now, after the environment is read

    subscriber = pubsub_v1.SubscriberClient()
    subscription = subscription_path(config.project, args.subscription or default_subscription(config.pubsub_topic))
    problem = check_not_a_loop(subscriber, subscription, config.topic_path)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    publisher = Publisher(config.topic_path, config.publish_timeout_s, config.retry_after_s)
    run = Redrive(subscriber, publisher, subscription, dry_run=args.dry_run, max_moved=args.max,
                  older_than=args.older_than, batch=args.batch, lease_s=args.lease,
                  publish_timeout_s=config.publish_timeout_s, progress=lambda line: print(line, file=sys.stderr,
                                                                                          flush=True))

    def stop(_signum: int, _frame: object) -> None:  # finish the batch in hand, release the rest, report
        run.stop_requested = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    report = run.run()
    print(orjson.dumps(report.as_json()).decode() if args.json else report.text(), flush=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
