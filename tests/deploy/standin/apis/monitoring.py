"""Cloud Monitoring: v3 projects.alertPolicies list/get/create/patch; v1 projects.dashboards list/get/create/patch."""

from __future__ import annotations

import copy
import uuid

from tests.deploy.standin.clock import rfc3339
from tests.deploy.standin.identity import Identities
from tests.deploy.standin.web import (
    Api,
    ApiError,
    Handler,
    Request,
    Response,
    apply_mask,
    camel_mask,
    invalid,
    not_found,
    ok,
)


class Monitoring(Api):
    """Alert policies and dashboards (display names are not unique: a second create makes a second one)."""

    name = "monitoring"

    def __init__(self, identities: Identities) -> None:
        self.identities = identities
        self.policies: dict[str, dict] = {}
        self.dashboards: dict[str, dict] = {}
        self.updates: dict[str, int] = {}

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [("GET", r"v3/projects/([^/]+)/alertPolicies", self.list_policies),
                ("POST", r"v3/projects/([^/]+)/alertPolicies", self.create_policy),
                ("GET", r"v3/(projects/[^/]+/alertPolicies/[^/:]+)", self.get_policy),
                ("PATCH", r"v3/(projects/[^/]+/alertPolicies/[^/:]+)", self.patch_policy),
                ("GET", r"v1/projects/([^/]+)/dashboards", self.list_dashboards),
                ("POST", r"v1/projects/([^/]+)/dashboards", self.create_dashboard),
                ("GET", r"v1/(projects/[^/]+/dashboards/[^/:]+)", self.get_dashboard),
                ("PATCH", r"v1/(projects/[^/]+/dashboards/[^/:]+)", self.patch_dashboard)]

    def canonical(self, name: str) -> str:
        """projects/ID/... and projects/NUMBER/... name the same resource; stored by number."""
        parts = name.split("/")
        if not parts[1].isdigit():
            parts[1] = self.identities.project_number(parts[1])
        return "/".join(parts)

    @staticmethod
    def record() -> dict:
        return {"mutateTime": rfc3339(), "mutatedBy": "deployer"}

    def list_policies(self, request: Request, project: str) -> Response:
        prefix = f"projects/{self.identities.project_number(project)}/"
        return ok({"alertPolicies": [p for n, p in self.policies.items() if n.startswith(prefix)],
                   "totalSize": sum(n.startswith(prefix) for n in self.policies)})

    def create_policy(self, request: Request, project: str) -> Response:
        body = request.json()
        if not body.get("conditions") or not body.get("combiner"):
            raise invalid("An alert policy needs conditions and a combiner.")
        name = f"projects/{self.identities.project_number(project)}/alertPolicies/{uuid.uuid4().int % 10**19}"
        policy = {**body, "name": name, "creationRecord": self.record(), "mutationRecord": self.record()}
        for condition in policy["conditions"]:
            condition["name"] = f"{name}/conditions/{uuid.uuid4().int % 10**19}"
        policy.setdefault("enabled", True)
        self.policies[name], self.updates[name] = policy, 0
        return ok(policy)

    def get_policy(self, request: Request, name: str) -> Response:
        name = self.canonical(name)
        if name not in self.policies:
            raise not_found(f"Could not find alert policy {name}.")
        return ok(self.policies[name])

    def patch_policy(self, request: Request, name: str) -> Response:
        name = self.canonical(name)
        if name not in self.policies:
            raise not_found(f"Could not find alert policy {name}.")
        body, mask = request.json(), camel_mask(request.arg("updateMask"))
        current = self.policies[name]
        updated = apply_mask(copy.deepcopy(current), body, mask) if mask else {**copy.deepcopy(body)}
        updated.update({"name": name, "creationRecord": current["creationRecord"], "mutationRecord": self.record()})
        for i, condition in enumerate(updated.get("conditions", [])):
            old = current.get("conditions", [])
            fresh = f"{name}/conditions/{uuid.uuid4().int % 10**19}"
            condition.setdefault("name", old[i]["name"] if i < len(old) else fresh)
        self.policies[name] = updated
        self.updates[name] += 1
        return ok(updated)

    def list_dashboards(self, request: Request, project: str) -> Response:
        prefix = f"projects/{self.identities.project_number(project)}/"
        return ok({"dashboards": [d for n, d in self.dashboards.items() if n.startswith(prefix)]})

    def create_dashboard(self, request: Request, project: str) -> Response:
        body = request.json()
        if not body.get("displayName"):
            raise invalid("A dashboard needs a displayName.")
        if body.get("etag"):
            raise invalid("The etag field should not be passed during dashboard creation.")
        name = f"projects/{self.identities.project_number(project)}/dashboards/{uuid.uuid4()}"
        self.dashboards[name] = {**body, "name": name, "etag": uuid.uuid4().hex}
        self.updates[name] = 0
        return ok(self.dashboards[name])

    def get_dashboard(self, request: Request, name: str) -> Response:
        name = self.canonical(name)
        if name not in self.dashboards:
            raise not_found(f"Requested entity was not found: {name}")
        return ok(self.dashboards[name])

    def patch_dashboard(self, request: Request, name: str) -> Response:
        name = self.canonical(name)
        if name not in self.dashboards:
            raise not_found(f"Requested entity was not found: {name}")
        body = request.json()
        if not body.get("etag"):  # "users are expected to put that etag in the request to UpdateDashboard"
            raise invalid("Update Dashboard should specify a non empty etag.")
        if body["etag"] != self.dashboards[name]["etag"]:
            raise ApiError(409, "Etag mismatch: the dashboard was changed since its etag was read. Get the "
                           "dashboard again and retry with its current etag.", "ABORTED")
        self.dashboards[name] = {**body, "name": name, "etag": uuid.uuid4().hex}
        self.updates[name] += 1
        return ok(self.dashboards[name])

    def snapshot(self) -> dict:
        return {"policies": self.policies, "dashboards": self.dashboards, "updates": self.updates}
