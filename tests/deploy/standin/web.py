"""The stand-in's HTTP vocabulary: requests, responses and google.rpc.Status errors."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# google.rpc.Code names by HTTP status (https://cloud.google.com/apis/design/errors#handling_errors).
STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                409: "ALREADY_EXISTS", 412: "FAILED_PRECONDITION", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
                501: "UNIMPLEMENTED", 503: "UNAVAILABLE"}


@dataclass
class Request:
    """One HTTP request, its path relative to the API's prefix."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: bytes
    headers: dict[str, str]
    base_url: str

    def json(self) -> Any:
        """The body as JSON ({} when empty)."""
        return json.loads(self.body) if self.body.strip() else {}

    def arg(self, name: str, default: str | None = None) -> str | None:
        """The first value of a query parameter."""
        return self.query.get(name, [default])[0]


@dataclass
class Response:
    """An HTTP answer."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json; charset=UTF-8"
    headers: dict[str, str] = field(default_factory=dict)
    forwarded: bool = False  # an emulator's answer passed on as it came (the stand-in's schema check skips it)


def ok(obj: Any, status: int = 200) -> Response:
    """A JSON answer."""
    return Response(status, json.dumps(obj).encode())


class ApiError(Exception):
    """An error answered as a google.rpc.Status body: {"error": {"code", "message", "status"}}.

    BigQuery's v2 API adds its legacy `errors` list (reason, message, domain), which bq requires.
    """

    def __init__(self, code: int, message: str, status: str | None = None, reason: str | None = None,
                 domain: str = "global", details: list[dict] | None = None) -> None:
        super().__init__(message)
        self.code, self.message = code, message
        self.status = status or STATUS_NAMES.get(code, "UNKNOWN")
        self.reason, self.domain, self.details = reason, domain, details

    def body(self) -> dict:
        """The error body."""
        error: dict[str, Any] = {"code": self.code, "message": self.message, "status": self.status}
        if self.reason:
            error["errors"] = [{"message": self.message, "domain": self.domain, "reason": self.reason}]
        if self.details:
            error["details"] = self.details
        return {"error": error}

    def response(self) -> Response:
        """The HTTP answer."""
        return ok(self.body(), self.code)


def service_disabled(service: str, title: str, number: str, legacy_reason: str | None = None) -> ApiError:
    """403 for a call to a service the project has not enabled: google.rpc.Status with an ErrorInfo (reason
    SERVICE_DISABLED, domain googleapis.com, metadata service / consumer / activationUrl) and a Help link
    (https://cloud.google.com/apis/design/errors; SOURCES.md "A brand-new project"). APIs with the legacy errors[]
    list (Compute, BigQuery) add it with `legacy_reason` (accessNotConfigured, domain usageLimits)."""
    url = f"https://console.developers.google.com/apis/api/{service}/overview?project={number}"
    message = (f"{title} has not been used in project {number} before or it is disabled. Enable it by visiting "
               f"{url} then retry. If you enabled this API recently, wait a few minutes for the action to propagate "
               "to our systems and retry.")
    details = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "SERVICE_DISABLED",
                "domain": "googleapis.com",
                "metadata": {"service": service, "consumer": f"projects/{number}", "activationUrl": url,
                             "serviceTitle": title, "containerInfo": number}},
               {"@type": "type.googleapis.com/google.rpc.Help",
                "links": [{"description": "Google developers console API activation", "url": url}]}]
    return ApiError(403, message, "PERMISSION_DENIED", legacy_reason, "usageLimits", details)


def not_found(message: str) -> ApiError:
    """404 NOT_FOUND."""
    return ApiError(404, message, "NOT_FOUND")


def already_exists(message: str) -> ApiError:
    """409 ALREADY_EXISTS."""
    return ApiError(409, message, "ALREADY_EXISTS")


def invalid(message: str) -> ApiError:
    """400 INVALID_ARGUMENT."""
    return ApiError(400, message, "INVALID_ARGUMENT")


Handler = Callable[..., Response]


class Api:
    """An API family: routes (method, path regex) to handlers that take the request and the regex groups."""

    name = "api"

    def routes(self) -> list[tuple[str, str, Handler]]:
        """(HTTP method, full-match regex of the path, handler)."""
        return []

    def handle(self, request: Request) -> Response:
        """Dispatch to the first matching route; 404 otherwise."""
        for method, pattern, handler in self.routes():
            match = re.fullmatch(pattern, request.path)
            if match and method == request.method:
                try:
                    return handler(request, *match.groups())
                except ApiError as error:
                    return error.response()
        return not_found(f"The stand-in does not serve {request.method} {request.path} ({self.name})").response()

    def snapshot(self) -> dict:
        """The API's state, JSON-serializable, for tests."""
        return {}


def get_path(obj: dict, dotted: str) -> Any:
    """obj's value at a dotted field path (None when absent)."""
    for part in dotted.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return obj


def apply_mask(target: dict, source: dict, mask: list[str]) -> dict:
    """Copy each masked field path from source into target; a field absent from source is cleared."""
    for path in mask:
        *parents, leaf = path.split(".")
        node, src = target, source
        for part in parents:
            node = node.setdefault(part, {})
            src = src.get(part, {}) if isinstance(src, dict) else {}
        if isinstance(src, dict) and leaf in src:
            node[leaf] = src[leaf]
        else:
            node.pop(leaf, None)
    return target


def camel_mask(mask: str | None) -> list[str]:
    """An update mask's field paths in camelCase (masks may arrive in snake_case)."""
    if not mask:
        return []
    return [re.sub(r"_([a-z])", lambda m: m.group(1).upper(), p.strip()) for p in mask.split(",") if p.strip()]
