"""Pub/Sub v1: a pass-through to the Pub/Sub emulator, answering the IAM methods the emulator lacks."""

from __future__ import annotations

import re
from urllib.parse import urlencode

from tests.deploy.standin.apis.iam_policy import policy_routes
from tests.deploy.standin.identity import Identities
from tests.deploy.standin.upstream import Upstream
from tests.deploy.standin.web import Api, ApiError, Handler, Request, Response


class PubSub(Api):
    """Topics and subscriptions live in the emulator; their IAM policies live here."""

    name = "pubsub"

    def __init__(self, identities: Identities, emulator: Upstream) -> None:
        self.identities, self.emulator = identities, emulator

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
        return self.emulator.send(request.method, f"/{request.path}{query}", request.body, request.headers)

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
