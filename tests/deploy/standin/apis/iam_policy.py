"""The getIamPolicy / setIamPolicy methods every resource API shares (google.iam.v1.IAMPolicy)."""

from __future__ import annotations

import re

from tests.deploy.standin.identity import Identities
from tests.deploy.standin.web import Handler, Request, Response, ok


def unversioned(path: str) -> str:
    """A resource path without its API version (v1/projects/p -> projects/p)."""
    return re.sub(r"^v[0-9]+[a-z0-9]*/", "", path)


def policy_routes(identities: Identities, resource: str, prefix: str = "") -> list[tuple[str, str, Handler]]:
    """Routes for RESOURCE:getIamPolicy (GET or POST) and RESOURCE:setIamPolicy, RESOURCE a path regex."""

    def get(request: Request, name: str, *_: str) -> Response:
        return ok(identities.get_policy(prefix + unversioned(name)))

    def set_(request: Request, name: str, *_: str) -> Response:
        return ok(identities.set_policy(prefix + unversioned(name), request.json().get("policy", {})))

    return [("GET", f"({resource}):getIamPolicy", get), ("POST", f"({resource}):getIamPolicy", get),
            ("POST", f"({resource}):setIamPolicy", set_)]
