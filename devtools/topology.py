"""Create the local Pub/Sub topology: events topic, dead-letter topic, push/pull subscriptions."""

from __future__ import annotations

import contextlib
import os

from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1


def clients(emulator_host: str) -> tuple[pubsub_v1.PublisherClient, pubsub_v1.SubscriberClient]:
    """Clients bound to the emulator.

    The library reads PUBSUB_EMULATOR_HOST when a client is created; it is set for that moment only and then
    restored, so that clients created later in the same process (an in-process function's, created lazily) are
    not silently bound to this emulator.
    """
    before = os.environ.get("PUBSUB_EMULATOR_HOST")
    os.environ["PUBSUB_EMULATOR_HOST"] = emulator_host
    try:
        return pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    finally:
        if before is None:
            del os.environ["PUBSUB_EMULATOR_HOST"]
        else:
            os.environ["PUBSUB_EMULATOR_HOST"] = before


def ensure_topic(publisher: pubsub_v1.PublisherClient, project: str, topic: str) -> str:
    """Create the topic if missing; return its path."""
    path = publisher.topic_path(project, topic)
    with contextlib.suppress(gexc.AlreadyExists):
        publisher.create_topic(name=path)
    return path


def ensure_subscription(
    subscriber: pubsub_v1.SubscriberClient,
    project: str,
    name: str,
    topic_path: str,
    *,
    push_endpoint: str | None = None,
    dead_letter_topic: str | None = None,
    max_delivery_attempts: int = 5,
    ack_deadline_s: int = 60,
    retry_backoff_s: tuple[int, int] = (1, 10),
) -> str:
    """Create a pull (or push, with an endpoint) subscription with retry and dead-letter policies.

    retry_backoff_s: the retry policy's (minimum, maximum) backoff in seconds.
    """
    path = subscriber.subscription_path(project, name)
    request: dict = {
        "name": path,
        "topic": topic_path,
        "ack_deadline_seconds": ack_deadline_s,
        "retry_policy": {"minimum_backoff": {"seconds": retry_backoff_s[0]},
                         "maximum_backoff": {"seconds": retry_backoff_s[1]}},
    }
    if push_endpoint:
        request["push_config"] = {"push_endpoint": push_endpoint}
    if dead_letter_topic:
        request["dead_letter_policy"] = {"dead_letter_topic": dead_letter_topic,
                                         "max_delivery_attempts": max_delivery_attempts}
    with contextlib.suppress(gexc.AlreadyExists):
        subscriber.create_subscription(request=request)
    return path
