"""Service Usage v1: services.enable, services.batchEnable, services.get, operations.get."""

from __future__ import annotations

import uuid

from tests.deploy.standin.identity import Identities
from tests.deploy.standin.web import Api, Handler, Request, Response, invalid, not_found, ok

BATCH_RESPONSE = "type.googleapis.com/google.api.serviceusage.v1.BatchEnableServicesResponse"
ENABLE_RESPONSE = "type.googleapis.com/google.api.serviceusage.v1.EnableServiceResponse"


class ServiceUsage(Api):
    """Enabled services per project; enabling answers a finished long-running Operation."""

    name = "serviceusage"

    def __init__(self, identities: Identities) -> None:
        self.identities = identities
        self.enabled: dict[str, set[str]] = {}
        self.operations: dict[str, dict] = {}

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [("POST", r"v1/projects/([^/]+)/services:batchEnable", self.batch_enable),
                ("POST", r"v1/projects/([^/]+)/services/([^/:]+):enable", self.enable),
                ("GET", r"v1/projects/([^/]+)/services/([^/:]+)", self.get),
                ("GET", r"v1/(operations/[^/]+)", self.operation)]

    def service(self, project: str, name: str) -> dict:
        number = self.identities.project_number(project)
        state = "ENABLED" if name in self.enabled.get(project, set()) else "DISABLED"
        return {"name": f"projects/{number}/services/{name}", "parent": f"projects/{number}",
                "config": {"name": name}, "state": state}

    def finished(self, response: dict) -> Response:
        name = f"operations/acat.p2-{uuid.uuid4()}"
        self.operations[name] = {"name": name, "done": True, "response": response}
        return ok(self.operations[name])

    def batch_enable(self, request: Request, project: str) -> Response:
        ids = request.json().get("serviceIds", [])
        if not ids or len(ids) > 20:
            raise invalid("serviceIds must name between 1 and 20 services")
        self.enabled.setdefault(project, set()).update(ids)
        return self.finished({"@type": BATCH_RESPONSE, "services": [self.service(project, s) for s in ids]})

    def enable(self, request: Request, project: str, name: str) -> Response:
        self.enabled.setdefault(project, set()).add(name)
        return self.finished({"@type": ENABLE_RESPONSE, "service": self.service(project, name)})

    def get(self, request: Request, project: str, name: str) -> Response:
        return ok(self.service(project, name))

    def operation(self, request: Request, name: str) -> Response:
        if name not in self.operations:
            raise not_found(f"Operation {name} not found")
        return ok(self.operations[name])

    def snapshot(self) -> dict:
        return {"enabled": {p: sorted(s) for p, s in self.enabled.items()}}
