"""Eventarc v1: triggers.get; the triggers Cloud Functions makes, each with its Pub/Sub push subscription."""

from __future__ import annotations

import itertools
import threading
import uuid

from tests.deploy.standin.apis.pubsub import PubSub
from tests.deploy.standin.clock import rfc3339
from tests.deploy.standin.settings import Settings
from tests.deploy.standin.web import Api, Handler, Request, Response, not_found, ok

PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"


class Eventarc(Api):
    """Triggers by full name; creating one creates its push subscription in the Pub/Sub emulator."""

    name = "eventarc"

    def __init__(self, settings: Settings, pubsub: PubSub) -> None:
        self.settings, self.pubsub = settings, pubsub
        self.triggers: dict[str, dict] = {}
        self.serial = itertools.count(100001)
        self.lock = threading.Lock()

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [("GET", r"v1/(projects/[^/]+/locations/[^/]+/triggers/[^/:]+)", self.get)]

    def get(self, request: Request, name: str) -> Response:
        if name not in self.triggers:
            raise not_found(f"Resource '{name}' was not found")
        return ok(self.triggers[name])

    def create(self, project: str, region: str, function: str, topic: str, push_account: str,
               endpoint: str, retry: bool) -> dict:
        """A trigger for a function's Pub/Sub event, and its push subscription with Eventarc's defaults."""
        with self.lock:
            serial = next(self.serial)
        trigger_id = f"{function}-{serial}"
        subscription = f"projects/{project}/subscriptions/eventarc-{region}-{trigger_id}-sub-{serial % 1000:03d}"
        body: dict = {"topic": topic, "messageRetentionDuration": f"{self.settings.eventarc_retention_seconds}s",
                      "pushConfig": {"pushEndpoint": endpoint, "oidcToken": {"serviceAccountEmail": push_account}}}
        if retry:
            body["retryPolicy"] = {"minimumBackoff": "10s", "maximumBackoff": "600s"}
        self.pubsub.create_subscription(subscription, body)
        name = f"projects/{project}/locations/{region}/triggers/{trigger_id}"
        stamp = rfc3339()
        self.triggers[name] = {
            "name": name, "uid": str(uuid.uuid4()), "createTime": stamp, "updateTime": stamp,
            "eventFilters": [{"attribute": "type", "value": PUBLISHED}], "serviceAccount": push_account,
            "destination": {"cloudRun": {"service": function, "region": region, "path": "/"}},
            "transport": {"pubsub": {"topic": topic, "subscription": subscription}},
            "etag": uuid.uuid4().hex, "eventDataContentType": "application/json"}
        return self.triggers[name]

    def delete(self, name: str) -> None:
        """Delete a trigger and its push subscription (the backlog is lost)."""
        trigger = self.triggers.pop(name, None)
        if trigger:
            self.pubsub.delete_subscription(trigger["transport"]["pubsub"]["subscription"])

    def snapshot(self) -> dict:
        return {"triggers": self.triggers}
