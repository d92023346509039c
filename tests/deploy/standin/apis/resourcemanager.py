"""Cloud Resource Manager v1: projects.get, projects.getIamPolicy, projects.setIamPolicy."""

from __future__ import annotations

from tests.deploy.standin.apis.iam_policy import policy_routes
from tests.deploy.standin.identity import Identities
from tests.deploy.standin.web import Api, Handler, Request, Response, ok


class ResourceManager(Api):
    """Every project id exists; its number is stable."""

    name = "cloudresourcemanager"

    def __init__(self, identities: Identities) -> None:
        self.identities = identities

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [("GET", r"v1/projects/([^/:]+)", self.get),
                *policy_routes(self.identities, r"v1/projects/[^/:]+")]

    def get(self, request: Request, project: str) -> Response:
        return ok({"projectNumber": self.identities.project_number(project), "projectId": project,
                   "lifecycleState": "ACTIVE", "name": project, "createTime": "2024-01-01T00:00:00.000Z"})
