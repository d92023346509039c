"""Cloud Run Admin v1/v2: services getIamPolicy / setIamPolicy (a function's invoker bindings)."""

from __future__ import annotations

from tests.deploy.standin.apis.iam_policy import policy_routes
from tests.deploy.standin.identity import Identities
from tests.deploy.standin.web import Api, Handler


class Run(Api):
    """The IAM policy of a function's Cloud Run service."""

    name = "run"

    def __init__(self, identities: Identities) -> None:
        self.identities = identities

    def routes(self) -> list[tuple[str, str, Handler]]:
        return policy_routes(self.identities, r"v[12]/projects/[^/]+/locations/[^/]+/services/[^/:]+")
