"""Service Usage v1: services.enable, services.batchEnable, services.get, services.list, operations.get. A project
starts with the default services only (identity.DEFAULT_SERVICES); enabling one creates its service agent."""

from __future__ import annotations

import uuid

from tests.deploy.standin.identity import DEFAULT_SERVICES, Identities
from tests.deploy.standin.web import Api, Handler, Request, Response, invalid, not_found, ok

BATCH_RESPONSE = "type.googleapis.com/google.api.serviceusage.v1.BatchEnableServicesResponse"
ENABLE_RESPONSE = "type.googleapis.com/google.api.serviceusage.v1.EnableServiceResponse"


class ServiceUsage(Api):
    """Enabled services per project; enabling answers a finished long-running Operation."""

    name = "serviceusage"

    def __init__(self, identities: Identities) -> None:
        self.identities = identities
        self.operations: dict[str, dict] = {}

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [("POST", r"v1/projects/([^/]+)/services:batchEnable", self.batch_enable),
                ("POST", r"v1/projects/([^/]+)/services/([^/:]+):enable", self.enable),
                ("GET", r"v1/projects/([^/]+)/services/([^/:]+)", self.get),
                ("GET", r"v1/projects/([^/]+)/services", self.list),
                ("GET", r"v1/(operations/[^/]+)", self.operation)]

    def service(self, project: str, name: str) -> dict:
        number = self.identities.project_number(project)
        state = "ENABLED" if self.identities.is_enabled(project, name) else "DISABLED"
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
        for service in ids:
            self.identities.enable(project, service)
        return self.finished({"@type": BATCH_RESPONSE, "services": [self.service(project, s) for s in ids]})

    def enable(self, request: Request, project: str, name: str) -> Response:
        self.identities.enable(project, name)
        return self.finished({"@type": ENABLE_RESPONSE, "service": self.service(project, name)})

    def get(self, request: Request, project: str, name: str) -> Response:
        return ok(self.service(project, name))

    def list(self, request: Request, project: str) -> Response:
        """ListServicesResponse; `filter=state:ENABLED` (what `gcloud services list --enabled` sends) lists the
        enabled ones, in pages of `pageSize` (https://cloud.google.com/service-usage/docs/reference/rest/v1/services/list)."""
        names = sorted(DEFAULT_SERVICES | self.identities.enabled.get(project, set()))
        if (request.arg("filter") or "") not in ("state:ENABLED", ""):
            raise invalid(f"The stand-in lists only enabled services, not filter {request.arg('filter')!r}")
        start, size = int(request.arg("pageToken") or 0), min(int(request.arg("pageSize") or 50), 200)
        page: dict = {"services": [self.service(project, n) for n in names[start:start + size]]}
        if start + size < len(names):
            page["nextPageToken"] = str(start + size)
        return ok(page)

    def operation(self, request: Request, name: str) -> Response:
        if name not in self.operations:
            raise not_found(f"Operation {name} not found")
        return ok(self.operations[name])

    def snapshot(self) -> dict:
        return {"enabled": {p: sorted(s) for p, s in self.identities.enabled.items()}}
