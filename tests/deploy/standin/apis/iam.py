"""IAM v1: projects.serviceAccounts.create, .get and .list.

A missing account read through `projects/-/` is 403, not 404: "if you try to access the service account
projects/-/serviceAccounts/fake@example.com, which does not exist, the response contains an HTTP 403 Forbidden
error instead of a 404 Not Found error" (https://cloud.google.com/iam/docs/reference/rest/v1/projects.serviceAccounts/get);
gcloud's `iam service-accounts describe` asks exactly that."""

from __future__ import annotations

import hashlib

from tests.deploy.standin.clock import now
from tests.deploy.standin.identity import Identities, etag
from tests.deploy.standin.web import Api, ApiError, Handler, Request, Response, already_exists, invalid, not_found, ok

DENIED_GET = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "IAM_PERMISSION_DENIED",
              "domain": "iam.googleapis.com", "metadata": {"permission": "iam.serviceAccounts.get"}}


class Iam(Api):
    """Service accounts; creating one marks it as just changed (IAM is eventually consistent)."""

    name = "iam"

    def __init__(self, identities: Identities) -> None:
        self.identities = identities

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [("POST", r"v1/projects/([^/]+)/serviceAccounts", self.create),
                ("GET", r"v1/projects/([^/]+)/serviceAccounts", self.list),
                ("GET", r"v1/projects/([^/]+)/serviceAccounts/([^/:]+)", self.get)]

    def create(self, request: Request, project: str) -> Response:
        body = request.json()
        account_id = body.get("accountId", "")
        if not 6 <= len(account_id) <= 30:
            raise invalid("Account ID must be between 6 and 30 characters.")
        email = f"{account_id}@{project}.iam.gserviceaccount.com"
        with self.identities.lock:
            if email in self.identities.accounts:
                raise already_exists(f"Service account {account_id} already exists within project projects/{project}.")
            unique = str(10**20 + int(hashlib.sha256(email.encode()).hexdigest()[:12], 16))
            self.identities.accounts[email] = {
                "name": f"projects/{project}/serviceAccounts/{email}", "projectId": project, "uniqueId": unique,
                "email": email, "displayName": body.get("serviceAccount", {}).get("displayName", ""),
                "etag": etag(1), "oauth2ClientId": unique, "_created": now()}
            self.identities.touch(email)
        return ok(self.public(email))

    def public(self, email: str) -> dict:
        return {k: v for k, v in self.identities.accounts[email].items() if not k.startswith("_")}

    def get(self, request: Request, project: str, email: str) -> Response:
        if email not in self.identities.accounts:
            if project == "-":
                raise ApiError(403, "Permission 'iam.serviceAccounts.get' denied on resource (or it may not exist).",
                               "PERMISSION_DENIED", details=[DENIED_GET])
            raise not_found(f"Unknown service account {email}")
        return ok(self.public(email))

    def list(self, request: Request, project: str) -> Response:
        """ListServiceAccountsResponse{accounts, nextPageToken}: the project's accounts, pageSize at most 100."""
        emails = sorted(e for e, a in self.identities.accounts.items() if a["projectId"] == project)
        start, size = int(request.arg("pageToken") or 0), min(int(request.arg("pageSize") or 20), 100)
        page: dict = {"accounts": [self.public(e) for e in emails[start:start + size]]}
        if start + size < len(emails):
            page["nextPageToken"] = str(start + size)
        return ok(page if page["accounts"] else {})
