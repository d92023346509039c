"""Pub/Sub v1: a pass-through to the Pub/Sub emulator, answering what the emulator lacks.

The emulator has no IAM methods, and refuses a subscriptions.patch whose update mask names
`expirationPolicy` ("Updating the expiration_policy field is currently unsupported in the Pub/Sub
Emulator"). Real Pub/Sub updates it (https://cloud.google.com/pubsub/docs/reference/rest/v1/projects.subscriptions/patch);
a subscription created without one expires after 31 days of inactivity
(https://cloud.google.com/pubsub/docs/reference/rest/v1/projects.subscriptions#ExpirationPolicy). Here the
policy is kept beside the emulator and merged into its answers.
"""

from __future__ import annotations

import json
import re
from urllib.parse import urlencode

from tests.deploy.standin.apis.iam_policy import policy_routes
from tests.deploy.standin.identity import Identities
from tests.deploy.standin.upstream import Upstream
from tests.deploy.standin.web import Api, ApiError, Handler, Request, Response


class PubSub(Api):
    """Topics and subscriptions live in the emulator; their IAM policies live here."""

    name = "pubsub"

    DEFAULT_EXPIRATION = {"ttl": "2678400s"}  # 31 days, Pub/Sub's default for a new subscription

    def __init__(self, identities: Identities, emulator: Upstream) -> None:
        self.identities, self.emulator = identities, emulator
        self.expirations: dict[str, dict] = {}  # subscription path -> expirationPolicy as last set

    def routes(self) -> list[tuple[str, str, Handler]]:
        return policy_routes(self.identities, r"v1/projects/[^/]+/(?:topics|subscriptions)/[^/:]+")

    def handle(self, request: Request) -> Response:
        for method, pattern, _ in self.routes():
            match = re.fullmatch(pattern, request.path)
            if match and method == request.method:
                if not self.exists(match.group(1)):
                    return ApiError(404, "Resource not found (resource=" + match.group(1).rsplit("/", 1)[-1] + ").",
                                    "NOT_FOUND").response()
                return super().handle(request)
        query = f"?{urlencode(request.query, doseq=True)}" if request.query else ""
        subscription = re.fullmatch(r"v1/(projects/[^/]+/subscriptions/[^/:]+)", request.path)
        body = request.body
        if subscription and request.method in ("PUT", "PATCH") and body:
            body = self._keep_expiration(subscription.group(1), request.method, json.loads(body))
        answer = self.emulator.send(request.method, f"/{request.path}{query}", body, request.headers)
        if subscription and answer.status == 200 and request.method in ("GET", "PUT", "PATCH"):
            shown = json.loads(answer.body)
            shown["expirationPolicy"] = self.expirations.get(subscription.group(1), self.DEFAULT_EXPIRATION)
            answer.body = json.dumps(shown).encode()
        if subscription and request.method == "DELETE":
            self.expirations.pop(subscription.group(1), None)
        return answer

    def _keep_expiration(self, path: str, method: str, body: dict) -> bytes:
        """Record the expiration policy a create or patch sets; forward the rest to the emulator."""
        if method == "PUT":
            if "expirationPolicy" in body:
                self.expirations[path] = body["expirationPolicy"]
            return json.dumps(body).encode()
        mask = [m for m in body.get("updateMask", "").split(",") if m]
        if "expirationPolicy" in mask or "expiration_policy" in mask:
            self.expirations[path] = body.get("subscription", {}).get("expirationPolicy", {})
            body["updateMask"] = ",".join(m for m in mask if m not in ("expirationPolicy", "expiration_policy"))
            body.get("subscription", {}).pop("expirationPolicy", None)
        return json.dumps(body).encode()

    def exists(self, path: str) -> bool:
        """Whether the emulator has the topic or subscription."""
        status, _ = self.emulator.call("GET", "/" + path)
        return status == 200

    def create_subscription(self, path: str, body: dict) -> dict:
        """Create a subscription in the emulator (PUT projects/P/subscriptions/S)."""
        status, answer = self.emulator.call("PUT", f"/v1/{path}", body)
        if status != 200:
            raise ApiError(status, f"creating {path} in the Pub/Sub emulator failed: {answer}")
        return answer

    def delete_subscription(self, path: str) -> None:
        """Delete a subscription from the emulator (its backlog goes with it)."""
        self.emulator.call("DELETE", f"/v1/{path}")
