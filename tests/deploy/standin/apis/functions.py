"""Cloud Functions v2: functions.get/create/patch, generateUploadUrl (+ the upload itself), runtimes.list,
operations.get. An event trigger becomes an Eventarc trigger with its own push subscription."""

from __future__ import annotations

import copy
import hashlib
import itertools
import threading
import uuid

from tests.deploy.standin.apis.eventarc import PUBLISHED, Eventarc
from tests.deploy.standin.clock import rfc3339
from tests.deploy.standin.identity import TITLES, Identities
from tests.deploy.standin.settings import Settings
from tests.deploy.standin.web import (
    Api,
    ApiError,
    Handler,
    Request,
    Response,
    already_exists,
    apply_mask,
    camel_mask,
    invalid,
    not_found,
    ok,
    service_disabled,
)

FUNCTION_TYPE = "type.googleapis.com/google.cloud.functions.v2.Function"
METADATA_TYPE = "type.googleapis.com/google.cloud.functions.v2.OperationMetadata"
RUNTIMES = ("python310", "python311", "python312", "python313")
# ServiceConfig.ingressSettings: gcloud's --ingress-settings all | internal-only | internal-and-gclb.
INGRESS = ("ALLOW_ALL", "ALLOW_INTERNAL_ONLY", "ALLOW_INTERNAL_AND_GCLB")
# Cloud Functions' build failures while a new build account's grants apply (SOURCES.md "A brand-new project"): the
# documented one (https://cloud.google.com/functions/docs/troubleshooting#build-service-account), then those seen in
# public reports; (google.rpc.Code, message) with {account}, {project}, {number}, {region} filled in.
BUILD_PERMISSION_ERROR = (
    "Build failed with status: FAILURE. Could not build the function due to a missing permission on the build "
    "service account. If you didn't revoke that permission explicitly, this could be caused by a change in the "
    "organization policies. Please refer to the following documentation for more details and resolution: "
    "https://cloud.google.com/functions/docs/troubleshooting#build-service-account")
BUILD_FAILURES = (
    (3, BUILD_PERMISSION_ERROR),
    (3, "Build failed with status: FAILURE. The service account running this build "
        "projects/{project}/serviceAccounts/{account} does not have permission to write logs to Cloud Logging. To fix "
        "this, grant the Logs Writer (roles/logging.logWriter) role to the service account."),
    (13, "Build failed with status: FAILURE and message: failed to Fetch: failed to download archive "
         "gs://gcf-v2-sources-{number}-{region}/{function}/function-source.zip: Access to bucket "
         "gcf-v2-sources-{number}-{region} denied. You must grant Storage Object Viewer permission to {account}. If "
         "you are using VPC Service Controls, you must also grant it access to your service perimeter."))
# Creating a function's first trigger while Eventarc provisions its service agent ("Eventarc uses a provisioning
# model that creates its service agent only when first needed"; the text: Eventarc troubleshooting): the create
# (or patch) call itself answers 400 FAILED_PRECONDITION "Validation failed for trigger …: " + this, and no function
# is left behind (public reports of the v2 API: typesense/firestore-typesense-search#134,
# terraform-docs-samples#486; Google documents the text, not the status).
EVENTARC_AGENT_ERROR = (
    'Invalid resource state for "": Permission denied while using the Eventarc Service Agent. If you recently '
    "started to use Eventarc, it may take a few minutes before all necessary permissions are propagated to the "
    "Service Agent. Otherwise, verify that it has Eventarc Service Agent role.")
# The stages of a deploy, in order (OperationMetadata.stages, Stage.Name); TRIGGER only for an event function.
STAGES = ("BUILD", "SERVICE", "TRIGGER")
# What a function needs enabled besides Cloud Functions itself: gen2 builds with Cloud Build into Artifact Registry
# and runs on Cloud Run; an event trigger is Eventarc's, on a Pub/Sub topic.
NEEDED_SERVICES = ("cloudbuild.googleapis.com", "artifactregistry.googleapis.com", "run.googleapis.com")
TRIGGER_SERVICES = ("eventarc.googleapis.com", "pubsub.googleapis.com")


class Failed(Exception):
    """A deploy stage that fails: its operation ends with this error (google.rpc.Code, message)."""

    def __init__(self, stage: str, code: int, message: str) -> None:
        super().__init__(message)
        self.stage, self.code, self.message = stage, code, message


class Functions(Api):
    """Functions by full name; create/patch answer an Operation that is done when first polled."""

    name = "cloudfunctions"

    def __init__(self, settings: Settings, identities: Identities, eventarc: Eventarc) -> None:
        self.settings, self.identities, self.eventarc = settings, identities, eventarc
        self.functions: dict[str, dict] = {}
        self.operations: dict[str, dict] = {}
        self.uploads: dict[str, int] = {}
        self.deploys: dict[str, int] = {}
        self.failed_builds: dict[str, int] = {}  # build account -> builds failed by build_iam_failing_builds
        self.revisions = itertools.count(1)
        self.lock = threading.RLock()

    def routes(self) -> list[tuple[str, str, Handler]]:
        loc = r"projects/[^/]+/locations/[^/]+"
        return [("GET", rf"v2/({loc}/functions/[^/:]+)", self.get),
                ("POST", rf"v2/({loc})/functions", self.create),
                ("PATCH", rf"v2/({loc}/functions/[^/:]+)", self.patch),
                ("POST", rf"v2/({loc})/functions:generateUploadUrl", self.upload_url),
                ("GET", rf"v2/({loc})/runtimes", self.runtimes),
                ("GET", rf"v2/({loc}/operations/[^/:]+)", self.operation)]

    def get(self, request: Request, name: str) -> Response:
        if name not in self.functions:
            raise not_found(f"Resource '{name}' was not found")
        return ok(self.functions[name])

    def runtimes(self, request: Request, parent: str) -> Response:
        return ok({"runtimes": [{"name": r, "displayName": f"Python {r[6]}.{r[7:]}", "stage": "GA",
                                 "environment": "GEN_2"} for r in RUNTIMES]})

    def upload_url(self, request: Request, parent: str) -> Response:
        number = self.identities.project_number(parent.split("/")[1])
        region = parent.split("/")[3]
        obj = f"{uuid.uuid4()}.zip"
        self.uploads[obj] = -1
        return ok({"uploadUrl": f"{request.base_url}/upload/{obj}",
                   "storageSource": {"bucket": f"gcf-v2-uploads-{number}.{region}.cloudfunctions.appspot.com",
                                     "object": obj}})

    def receive_upload(self, request: Request) -> Response:
        """The PUT of a source zip to a generated upload URL (a signed Cloud Storage URL on Google Cloud)."""
        obj = request.path
        if obj not in self.uploads or request.method != "PUT":
            return Response(403, b"<Error><Code>AccessDenied</Code></Error>", "application/xml")
        if not request.body.startswith(b"PK"):
            return Response(400, b"<Error><Code>InvalidArgument</Code></Error>", "application/xml")
        self.uploads[obj] = len(request.body)
        return Response(200, b"", "text/plain")

    def create(self, request: Request, parent: str) -> Response:
        function_id = request.arg("functionId") or ""
        name = f"{parent}/functions/{function_id}"
        with self.lock:
            if name in self.functions:
                raise already_exists(f"Resource '{name}' already exists")
            body = request.json()
            self.check_source(body)
            self.check_services(name, body)
            self.check_trigger_agent(name, body)
            return self.deployed(name, "create", body, None, None)

    def patch(self, request: Request, name: str) -> Response:
        with self.lock:
            if name not in self.functions:
                raise not_found(f"Resource '{name}' was not found")
            body = request.json()
            mask = camel_mask(request.arg("updateMask"))
            if "buildConfig.source" in mask or "buildConfig.source.storageSource" in mask:
                self.check_source(body)
            updated = apply_mask(copy.deepcopy(self.functions[name]), body, mask)
            self.check_services(name, updated)
            old = self.functions[name]
            trigger_changed = any(p == "eventTrigger" or p.startswith("eventTrigger.") for p in mask)
            if trigger_changed and not old.get("eventTrigger", {}).get("trigger"):
                self.check_trigger_agent(name, updated)
            return self.deployed(name, "update", updated, old if not trigger_changed else None, old)

    def check_services(self, name: str, body: dict) -> None:
        """403 SERVICE_DISABLED when a service the function needs is off (the first one missing)."""
        project = name.split("/")[1]
        needed = NEEDED_SERVICES + (TRIGGER_SERVICES if body.get("eventTrigger") else ())
        for service in needed:
            if not self.identities.is_enabled(project, service):
                raise service_disabled(service, TITLES[service], self.identities.project_number(project))

    def check_trigger_agent(self, name: str, body: dict) -> None:
        """The call that would create a function's first trigger fails at once while Eventarc's agent propagates."""
        project, region, function_id = name.split("/")[1], name.split("/")[3], name.split("/")[5]
        if body.get("eventTrigger") and not self.identities.agent_ready(
                self.identities.agent(project, "eventarc.googleapis.com")):
            trigger = f"projects/{project}/locations/{region}/triggers/{function_id}-{uuid.uuid4().int % 10**6:06d}"
            raise ApiError(400, f"Validation failed for trigger {trigger}: {EVENTARC_AGENT_ERROR}",
                           "FAILED_PRECONDITION")

    def deployed(self, name: str, verb: str, body: dict, keep_trigger_of: dict | None, previous: dict | None
                 ) -> Response:
        """Build, then the service, then the trigger; the operation that reports them (failed at the first stage
        that fails: the function is FAILED, its previous service and trigger as they were)."""
        try:
            self.build(name, body)
            function = self.materialize(name, body, keep_trigger_of, previous)
        except Failed as failure:
            function = copy.deepcopy(previous or body)
            project, region, function_id = name.split("/")[1], name.split("/")[3], name.split("/")[5]
            function.setdefault("createTime", rfc3339())  # output fields Function always carries (gcloud picks
            function.update({"name": name, "state": "FAILED", "updateTime": rfc3339(), "environment": "GEN_2",
                             "url": f"https://{region}-{project}.cloudfunctions.net/{function_id}"})  # gen2 by them)
            self.functions[name] = function
            return self.operation_for(name, verb, function, failure)
        return self.operation_for(name, verb, function)

    def build(self, name: str, body: dict) -> None:
        """A build fails while its account's grants apply: within build_iam_delay_seconds of a change to the
        account, or as one of its first build_iam_failing_builds builds (counted: each a text of BUILD_FAILURES in
        turn)."""
        account = body.get("buildConfig", {}).get("serviceAccount", "").rsplit("/", 1)[-1]
        if not account:
            return
        failure = None
        if self.identities.changed_within(account, self.settings.build_iam_delay_seconds):
            failure = BUILD_FAILURES[0]
        else:
            with self.lock:
                failed = self.failed_builds.get(account, 0)
                if failed < self.settings.build_iam_failing_builds:
                    self.failed_builds[account] = failed + 1
                    failure = BUILD_FAILURES[failed % len(BUILD_FAILURES)]
        if failure:
            project, region, function = name.split("/")[1], name.split("/")[3], name.split("/")[5]
            raise Failed("BUILD", failure[0], failure[1].format(
                account=account, project=project, number=self.identities.project_number(project), region=region,
                function=function))

    def check_source(self, body: dict) -> None:
        obj = body.get("buildConfig", {}).get("source", {}).get("storageSource", {}).get("object")
        if obj and self.uploads.get(obj, -1) < 0:
            raise invalid(f"Source object {obj} was not uploaded")

    def uri(self, name: str) -> str:
        project, region, function = name.split("/")[1], name.split("/")[3], name.split("/")[5]
        digest = hashlib.sha256(f"{project}/{function}".encode()).hexdigest()[:10]
        return f"https://{function}-{digest}-{region[:2]}.a.run.app"

    def materialize(self, name: str, body: dict, keep_trigger_of: dict | None, previous: dict | None = None) -> dict:
        """The stored function: output-only fields filled; the trigger kept or (re)created."""
        project, region, function_id = name.split("/")[1], name.split("/")[3], name.split("/")[5]
        stamp = rfc3339()
        function = copy.deepcopy(body)
        function.update({"name": name, "environment": "GEN_2", "state": "ACTIVE", "updateTime": stamp,
                         "url": f"https://{region}-{project}.cloudfunctions.net/{function_id}"})
        function.setdefault("createTime", (previous or {}).get("createTime", stamp))
        build = function.setdefault("buildConfig", {})
        build["build"] = f"projects/{self.identities.project_number(project)}/locations/{region}/builds/{uuid.uuid4()}"
        build.setdefault("dockerRegistry", "ARTIFACT_REGISTRY")
        service = function.setdefault("serviceConfig", {})
        if service.get("ingressSettings", "ALLOW_ALL") not in INGRESS:
            raise invalid(f"Invalid value for field 'service_config.ingress_settings': {service['ingressSettings']!r}")
        service.update({"uri": self.uri(name),
                        "service": f"projects/{project}/locations/{region}/services/{function_id}",
                        "revision": f"{function_id}-{next(self.revisions):05d}-{uuid.uuid4().hex[:3]}",
                        "allTrafficOnLatestRevision": True})
        service.setdefault("ingressSettings", "ALLOW_ALL")
        service.setdefault("timeoutSeconds", 60)
        trigger = function.get("eventTrigger")
        if keep_trigger_of is not None and keep_trigger_of.get("eventTrigger"):
            function["eventTrigger"] = copy.deepcopy(keep_trigger_of["eventTrigger"])
        elif trigger:
            if previous and previous.get("eventTrigger", {}).get("trigger"):
                if not self.settings.recreate_trigger_on_update:
                    function["eventTrigger"] = copy.deepcopy({**previous["eventTrigger"], **trigger,
                                                               "trigger": previous["eventTrigger"]["trigger"]})
                    return self.store(name, function)
                self.eventarc.delete(previous["eventTrigger"]["trigger"])
            default_account = f"{self.identities.project_number(project)}-compute@developer.gserviceaccount.com"
            push = trigger.get("serviceAccountEmail") or default_account
            made = self.eventarc.create(project, trigger.get("triggerRegion", region), function_id,
                                        trigger["pubsubTopic"], push, service["uri"],
                                        trigger.get("retryPolicy") == "RETRY_POLICY_RETRY")
            trigger.update({"trigger": made["name"], "triggerRegion": trigger.get("triggerRegion", region),
                            "eventType": trigger.get("eventType", PUBLISHED), "serviceAccountEmail": push})
            trigger.setdefault("retryPolicy", "RETRY_POLICY_DO_NOT_RETRY")
        elif previous and previous.get("eventTrigger", {}).get("trigger"):
            self.eventarc.delete(previous["eventTrigger"]["trigger"])
        return self.store(name, function)

    def store(self, name: str, function: dict) -> dict:
        self.functions[name] = function
        self.deploys[name] = self.deploys.get(name, 0) + 1
        return function

    def operation_for(self, name: str, verb: str, function: dict, failure: Failed | None = None) -> Response:
        """The long-running operation of a deploy: its stages NOT_STARTED now, the first IN_PROGRESS at the first
        poll (gcloud's staged progress then reports a failure as OperationError, as a real deploy shows), then each
        COMPLETE (or the failed one with its message); done with the function or with the failure's error."""
        parent = name.rsplit("/functions/", 1)[0]
        op_name = f"{parent}/operations/operation-{uuid.uuid4().hex[:16]}"
        stages = [s for s in STAGES if s != "TRIGGER" or function.get("eventTrigger")]
        metadata = {"@type": METADATA_TYPE, "createTime": rfc3339(), "target": name, "verb": verb,
                    "apiVersion": "v2", "cancelRequested": False,
                    "operationType": "CREATE_FUNCTION" if verb == "create" else "UPDATE_FUNCTION",
                    "stages": [{"name": s, "state": "NOT_STARTED"} for s in stages]}
        final = []
        for stage in stages:
            if failure and stages.index(stage) > stages.index(failure.stage):
                final.append({"name": stage, "state": "NOT_STARTED"})
            elif failure and stage == failure.stage:
                final.append({"name": stage, "state": "COMPLETE", "message": failure.message,
                              "stateMessages": [{"severity": "ERROR", "type": f"{stage.title()}Failed",
                                                 "message": failure.message}]})
            else:
                final.append({"name": stage, "state": "COMPLETE", **self.stage_resource(stage, function)})
        operation: dict = {"name": op_name, "metadata": metadata, "done": False, "_stages": final}
        if failure:
            operation["_result"] = {"error": {"code": failure.code, "message": failure.message}}
        else:
            operation["_result"] = {"response": {"@type": FUNCTION_TYPE, **copy.deepcopy(function)}}
        self.operations[op_name] = operation
        return ok({k: v for k, v in operation.items() if not k.startswith("_")})

    @staticmethod
    def stage_resource(stage: str, function: dict) -> dict:
        """The resource a completed stage made (Stage.resource, resourceUri)."""
        resource = {"BUILD": function.get("buildConfig", {}).get("build"),
                    "SERVICE": function.get("serviceConfig", {}).get("service"),
                    "TRIGGER": function.get("eventTrigger", {}).get("trigger")}[stage]
        return {"resource": resource} if resource else {}

    def operation(self, request: Request, name: str) -> Response:
        operation = self.operations.get(name)
        if operation is None:
            raise not_found(f"Operation '{name}' was not found")
        operation["_polls"] = operation.get("_polls", 0) + 1
        if operation["_polls"] == 1:  # a deploy is still running when first polled: its first stage in progress
            stages = operation["metadata"]["stages"]
            stages[0] = {**stages[0], "state": "IN_PROGRESS"}
            return ok({k: v for k, v in operation.items() if not k.startswith("_")})
        operation["done"] = True
        operation["metadata"]["endTime"] = operation["metadata"].get("endTime", rfc3339())
        operation["metadata"]["stages"] = operation["_stages"]
        return ok({**{k: v for k, v in operation.items() if not k.startswith("_")}, **operation["_result"]})

    def snapshot(self) -> dict:
        return {"functions": self.functions, "deploys": self.deploys,
                "uploads": {k: v for k, v in self.uploads.items() if v >= 0}}
