"""BigQuery Data Transfer v1: transferConfigs list / create / get / patch (scheduled queries)."""

from __future__ import annotations

import copy
import datetime as dt
import uuid

from tests.deploy.standin.clock import rfc3339
from tests.deploy.standin.identity import Identities
from tests.deploy.standin.web import Api, Handler, Request, Response, apply_mask, camel_mask, invalid, not_found, ok


class DataTransfer(Api):
    """Transfer configs by name (display names are not unique); the run-as account is kept per config."""

    name = "bigquerydatatransfer"

    def __init__(self, identities: Identities) -> None:
        self.identities = identities
        self.configs: dict[str, dict] = {}
        self.accounts: dict[str, str] = {}
        self.updates: dict[str, int] = {}

    def routes(self) -> list[tuple[str, str, Handler]]:
        loc = r"projects/([^/]+)/locations/([^/]+)"
        return [("GET", rf"v1/{loc}/transferConfigs", self.list),
                ("POST", rf"v1/{loc}/transferConfigs", self.create),
                ("GET", rf"v1/({loc}/transferConfigs/[^/:]+)", self.get),
                ("PATCH", rf"v1/({loc}/transferConfigs/[^/:]+)", self.patch),
                ("POST", rf"v1/{loc}/dataSources/([^/:]+):checkValidCreds", self.check_creds)]

    def check_creds(self, request: Request, project: str, location: str, source: str) -> Response:
        """CheckValidCredsResponse: the deployer's credentials are valid for every data source."""
        return ok({"hasValidCreds": True})

    def key(self, name: str) -> str:
        """Configs are named with the project number and a lower-case location."""
        parts = name.split("/")
        parts[1] = parts[1] if parts[1].isdigit() else self.identities.project_number(parts[1])
        parts[3] = parts[3].lower()
        return "/".join(parts)

    def list(self, request: Request, project: str, location: str) -> Response:
        prefix = self.key(f"projects/{project}/locations/{location}/transferConfigs/x")[:-1]
        configs = [c for n, c in self.configs.items() if n.startswith(prefix)]
        wanted = request.query.get("dataSourceIds")
        if wanted:
            configs = [c for c in configs if c["dataSourceId"] in wanted]
        return ok({"transferConfigs": configs} if configs else {})

    def account(self, request: Request) -> str | None:
        email = request.arg("serviceAccountName")
        if email and email not in self.identities.accounts:
            raise invalid(f"Service account {email} does not exist.")
        return email

    def create(self, request: Request, project: str, location: str) -> Response:
        body = request.json()
        if not body.get("displayName") or not body.get("dataSourceId"):
            raise invalid("A transfer config needs a displayName and a dataSourceId.")
        email = self.account(request)
        name = self.key(f"projects/{project}/locations/{location}/transferConfigs/{uuid.uuid4()}")
        stamp = rfc3339()
        # state: "State of the most recently updated transfer run", a TransferState; PENDING is "scheduled and
        # waiting to be picked up" (https://cloud.google.com/bigquery/docs/reference/datatransfer/rest/v1/TransferState)
        config = {**body, "name": name, "updateTime": stamp, "state": "PENDING",
                  "userId": str(uuid.uuid4().int % 10**18), "datasetRegion": location.lower(),
                  "nextRunTime": rfc3339(dt.datetime.now(dt.UTC).timestamp() + 3600)}
        if email:
            config["ownerInfo"] = {"email": email}
            self.accounts[name] = email
        self.configs[name], self.updates[name] = config, 0
        return ok(config)

    def get(self, request: Request, name: str, *_: str) -> Response:
        key = self.key(name)
        if key not in self.configs:
            raise not_found(f"Transfer config {name} not found.")
        return ok(self.configs[key])

    def patch(self, request: Request, name: str, *_: str) -> Response:
        key = self.key(name)
        if key not in self.configs:
            raise not_found(f"Transfer config {name} not found.")
        email = self.account(request)
        # bq names the fields under the request's body field: updateMask=transfer_config.params,... (the SDK's
        # platform/bq/clients/client_data_transfer.py); the paths are the TransferConfig's own.
        mask = [m.removeprefix("transferConfig.") for m in camel_mask(request.arg("updateMask"))]
        if not mask:
            raise invalid("update_mask is required: the fields to update (transferConfigs.patch).")
        config = apply_mask(copy.deepcopy(self.configs[key]), request.json(), mask)
        config["updateTime"] = rfc3339()
        if email and ("service_account_name" in (request.arg("updateMask") or "") or "serviceAccountName" in mask):
            config["ownerInfo"] = {"email": email}
            self.accounts[key] = email
        self.configs[key] = config
        self.updates[key] += 1
        return ok(config)

    def snapshot(self) -> dict:
        return {"configs": self.configs, "accounts": self.accounts, "updates": self.updates}
