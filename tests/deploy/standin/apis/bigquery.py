"""BigQuery v2 in front of the BigQuery emulator: what DuckDB cannot run is answered or rewritten here.

Datasets' access lists are kept here, as BigQuery keeps them: a new dataset gets the default entries, GRANT … ON
SCHEMA adds a member, datasets.patch / update replace the whole list (after an If-Match etag check) and may
authorize views or a dataset's views (`{"view": …}`, `{"dataset": {"dataset": …, "targetTypes": [...]}}`, which
the emulator does not keep in that shape); CREATE/DROP MATERIALIZED VIEW run as plain views on the
emulator (the materialized view's labels and computations are remembered here); a multi-clause ALTER TABLE runs
as one statement per clause; table metadata updates are limited per table as BigQuery's quota documents.
"""

from __future__ import annotations

import collections
import copy
import hashlib
import json
import re
import threading
import time
import uuid
from urllib.parse import urlencode

from tests.deploy.standin import sql
from tests.deploy.standin.clock import now
from tests.deploy.standin.identity import Identities
from tests.deploy.standin.settings import Settings
from tests.deploy.standin.upstream import Upstream
from tests.deploy.standin.web import Api, ApiError, Request, Response, invalid, ok

RATE_LIMIT = ("Exceeded rate limits: too many table update operations for this table. For more information, see "
              "https://cloud.google.com/bigquery/docs/troubleshoot-quotas")
# "If unspecified at dataset creation time, BigQuery adds default dataset access for the following entities"
# (Dataset.access; the creator's own OWNER entry is not modelled: the stand-in does not resolve the caller).
DEFAULT_ACCESS = ({"role": "READER", "specialGroup": "projectReaders"},
                  {"role": "WRITER", "specialGroup": "projectWriters"},
                  {"role": "OWNER", "specialGroup": "projectOwners"})
MEMBER_KEYS = ("userByEmail", "groupByEmail", "domain", "specialGroup", "iamMember")
TARGET_TYPES = ("VIEWS", "ROUTINES")
DDL_KINDS = {"GRANT": "GRANT", "CREATE_MATERIALIZED_VIEW": "CREATE_MATERIALIZED_VIEW",
             "DROP_MATERIALIZED_VIEW": "DROP_MATERIALIZED_VIEW", "ALTER_TABLE": "ALTER_TABLE"}


class JobFailed(Exception):
    """A query job that BigQuery would create and finish with an errorResult."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


def check_etag(request: Request, etag: str) -> None:
    """An If-Match other than the dataset's etag: 412 "Precondition check failed." (bq sends it on the get and on the
    patch of `bq update`, platform/bq/clients/client_dataset.py; the answer: googleapis/python-bigquery#772)."""
    wanted = {k.lower(): v for k, v in request.headers.items()}.get("if-match")
    if wanted and wanted.strip('"') != etag.strip('"'):
        raise ApiError(412, "Precondition check failed.", "FAILED_PRECONDITION", reason="failedPrecondition")


class BigQuery(Api):
    """A pass-through to the emulator's REST port with BigQuery's behaviours the emulator lacks."""

    name = "bigquery"

    def __init__(self, settings: Settings, emulator: Upstream, identities: Identities) -> None:
        self.settings, self.emulator, self.identities = settings, emulator, identities
        self.access: dict[str, list[dict]] = {}  # project.dataset -> its access list (as BigQuery keeps it)
        self.access_updates: dict[str, int] = {}  # project.dataset -> datasets.patch/update calls that changed it
        self.materialized: dict[str, dict] = {}
        self.computations: dict[str, int] = {}
        self.updates: dict[str, collections.deque] = {}
        self.update_counts: dict[str, int] = {}
        self.statements: list[dict] = []
        self.jobs: dict[str, dict] = {}
        self.lock = threading.RLock()

    # ---- routing ---------------------------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        path = request.path
        try:
            if request.method == "POST" and re.fullmatch(r"bigquery/v2/projects/[^/]+/jobs", path):
                return self.insert_job(request)
            job = re.fullmatch(r"bigquery/v2/projects/[^/]+/(?:jobs|queries)/([^/]+)", path)
            if job and job.group(1) in self.jobs and request.method == "GET":
                return self.synthetic(job.group(1), path.split("/")[4])
            created = re.fullmatch(r"bigquery/v2/projects/([^/]+)/datasets", path)
            if created and request.method == "POST":
                return self.insert_dataset(created.group(1), request)
            dataset = re.fullmatch(r"bigquery/v2/projects/([^/]+)/datasets/([^/]+)", path)
            if dataset and request.method in ("PATCH", "PUT"):
                return self.update_dataset(".".join(dataset.groups()), request)
            table = re.fullmatch(r"bigquery/v2/projects/([^/]+)/datasets/([^/]+)/tables/([^/]+)", path)
            if table and request.method in ("PATCH", "PUT"):
                self.count_update(".".join(table.groups()))
            answer = self.forward(request)
            if table and request.method == "GET" and answer.status == 200:
                return self.as_materialized(".".join(table.groups()), answer)
            if dataset and request.method == "GET" and answer.status == 200:
                found = self.with_access(".".join(dataset.groups()), answer)
                check_etag(request, json.loads(found.body)["etag"])
                return found
            return answer
        except ApiError as error:
            return error.response()

    # ---- datasets' access lists ---------------------------------------------------------------------------
    def insert_dataset(self, project: str, request: Request) -> Response:
        """datasets.insert: the emulator creates it; its access list (given, or the defaults) is kept here."""
        body = request.json()
        access = self.checked_access(body["access"], project) if "access" in body else [*map(dict, DEFAULT_ACCESS)]
        answer = self.forward(request, json.dumps({k: v for k, v in body.items() if k != "access"}).encode())
        if answer.status != 200:
            return answer
        ref = json.loads(answer.body)["datasetReference"]
        with self.lock:
            self.access[f"{ref['projectId']}.{ref['datasetId']}"] = access
        return self.with_access(f"{ref['projectId']}.{ref['datasetId']}", answer)

    def update_dataset(self, dataset: str, request: Request) -> Response:
        """datasets.patch / update: "If you patch a dataset, then this field is overwritten by the patched
        dataset's access field" (Dataset.access). An If-Match etag other than the current one is refused."""
        body = request.json()
        with self.lock:
            current = self.forward(Request("GET", request.path, {}, b"", request.headers, request.base_url))
            if current.status != 200:
                return current
            check_etag(request, json.loads(self.with_access(dataset, current).body)["etag"])
            access = self.checked_access(body["access"], dataset.split(".")[0]) if "access" in body else None
            rest = {k: v for k, v in body.items() if k not in ("access", "etag")}
            answer = self.forward(request, json.dumps(rest).encode())
            if answer.status != 200:
                return answer
            if access is not None and access != self.access.get(dataset):
                self.access[dataset] = access
                self.access_updates[dataset] = self.access_updates.get(dataset, 0) + 1
            return self.with_access(dataset, answer)

    @staticmethod
    def checked_access(entries: object, project: str) -> list[dict]:
        """The access list as BigQuery takes it: each entry one member with a role, or one view, dataset or
        routine; a dataset entry names its dataset (`dataset.dataset`) and target types (DatasetAccessEntry)."""
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise invalid("Invalid value for access: an array of access entries is expected")
        checked = []
        for entry in entries:
            kinds = [k for k in (*MEMBER_KEYS, "view", "dataset", "routine") if k in entry]
            if len(kinds) != 1:
                raise invalid(f"An access entry needs exactly one of userByEmail, groupByEmail, domain, specialGroup, "
                              f"iamMember, view, dataset, routine: {json.dumps(entry)}")
            if kinds[0] in MEMBER_KEYS and not entry.get("role"):
                raise invalid(f"Access entry {json.dumps(entry)} has no role")
            if kinds[0] == "dataset":
                granted = entry["dataset"]
                ref = granted.get("dataset") if isinstance(granted, dict) else None
                types = granted.get("targetTypes") if isinstance(granted, dict) else None
                if not isinstance(ref, dict) or not ref.get("datasetId") or not types \
                        or any(t not in TARGET_TYPES for t in types) or "role" in entry:
                    raise invalid("A dataset access entry needs dataset.dataset (projectId, datasetId) and "
                                  f"dataset.targetTypes (VIEWS, ROUTINES), and no role: {json.dumps(entry)}")
                granted = {**granted, "dataset": {"projectId": ref.get("projectId", project),
                                                  "datasetId": ref["datasetId"]}}
                entry = {"dataset": granted}
            checked.append(copy.deepcopy(entry))
        return checked

    def forward(self, request: Request, body: bytes | None = None) -> Response:
        query = f"?{urlencode(request.query, doseq=True)}" if request.query else ""
        return self.emulator.send(request.method, f"/{request.path}{query}",
                                  request.body if body is None else body, request.headers)

    # ---- quota -----------------------------------------------------------------------------------------
    def count_update(self, table: str) -> None:
        """One table metadata update; more than the quota within the window is refused (403 rateLimitExceeded)."""
        with self.lock:
            window = self.updates.setdefault(table, collections.deque())
            moment = now()
            while window and moment - window[0] >= self.settings.table_update_window_seconds:
                window.popleft()
            if len(window) >= self.settings.table_updates_per_window:
                raise ApiError(403, RATE_LIMIT, "PERMISSION_DENIED", reason="rateLimitExceeded")
            window.append(moment)
            self.update_counts[table] = self.update_counts.get(table, 0) + 1

    # ---- query jobs ------------------------------------------------------------------------------------
    def insert_job(self, request: Request) -> Response:
        body = request.json()
        config = body.get("configuration", {})
        query = config.get("query", {})
        if "query" not in query or query.get("useLegacySql") is True:
            return self.forward(request)
        project = request.path.split("/")[3]
        dry = bool(config.get("dryRun"))
        statements = [sql.classify(s, project) for s in sql.split_statements(query["query"])]
        with self.lock:
            if not dry:
                self.statements += [{"kind": s.kind, "target": s.target, "text": s.text} for s in statements]
            try:
                run = self.prepare(statements, dry)
            except JobFailed as failure:
                return ok(self.finished_job(project, body, "SCRIPT", failure))
            if not run:
                if not dry:
                    self.remember(statements)
                kind = DDL_KINDS.get(statements[0].kind, "SCRIPT") if len(statements) == 1 else "SCRIPT"
                return ok(self.finished_job(project, body, kind))
            rewritten = copy.deepcopy(body)
            rewritten["configuration"]["query"]["query"] = ";\n".join(run)
            answer = self.forward(request, json.dumps(rewritten).encode())
            if answer.status == 200 and not dry:
                self.remember(statements)
            return answer

    def prepare(self, statements: list[sql.Statement], dry: bool) -> list[str]:
        """What the emulator runs for the script; raises JobFailed as BigQuery's job would fail."""
        run: list[str] = []
        for statement in statements:
            if statement.kind == "GRANT":
                for member in statement.members:
                    kind, _, email = member.partition(":")
                    if kind == "serviceAccount":
                        try:
                            self.identities.check_member(email, "bigquery")
                        except ApiError as error:  # the job fails; bq prints the message
                            raise JobFailed("invalid", error.message.rstrip(".")) from error
            if statement.kind == "CREATE_MATERIALIZED_VIEW" and statement.target in self.materialized:
                if statement.if_exists:
                    continue
                raise JobFailed("duplicate", f"Already Exists: Table {statement.target.replace('.', ':', 1)}")
            if statement.kind == "ALTER_TABLE" and not dry:
                try:
                    self.count_update(statement.target)
                except ApiError as error:
                    raise JobFailed("rateLimitExceeded", error.message) from error
            run += statement.run
        return run

    def remember(self, statements: list[sql.Statement]) -> None:
        """Record what the script changed that the emulator does not keep."""
        for statement in statements:
            if statement.kind == "GRANT":
                self.grant(statement)
            elif statement.kind == "DROP_MATERIALIZED_VIEW":
                self.materialized.pop(statement.target, None)
            elif statement.kind == "CREATE_MATERIALIZED_VIEW":
                self.materialized[statement.target] = {"labels": statement.labels, "query": statement.query,
                                                       "created": now()}
                # A new materialized view is computed over its whole base table.
                self.computations[statement.target] = self.computations.get(statement.target, 0) + 1

    def grant(self, statement: sql.Statement) -> None:
        entries = self.access.setdefault(statement.target, [*map(dict, DEFAULT_ACCESS)])
        for member in statement.members:
            kind, _, email = member.partition(":")
            key = {"serviceAccount": "userByEmail", "user": "userByEmail", "group": "groupByEmail"}.get(kind)
            entry = {"role": statement.role, key: email} if key else {"role": statement.role, "iamMember": member}
            if entry not in entries:
                entries.append(entry)

    def finished_job(self, project: str, body: dict, statement_type: str, failure: JobFailed | None = None) -> dict:
        """A DONE job answered here (what BigQuery answers for a statement the emulator does not run)."""
        job_id = body.get("jobReference", {}).get("jobId") or f"bqjob_{uuid.uuid4().hex}"
        location = body.get("jobReference", {}).get("location", "US")
        ms = str(int(time.time() * 1000))
        job = {"kind": "bigquery#job", "etag": uuid.uuid4().hex, "id": f"{project}:{location}.{job_id}",
               "selfLink": f"/bigquery/v2/projects/{project}/jobs/{job_id}?location={location}",
               "jobReference": {"projectId": project, "jobId": job_id, "location": location},
               "configuration": {**body.get("configuration", {}), "jobType": "QUERY"},
               "statistics": {"creationTime": ms, "startTime": ms, "endTime": ms, "totalBytesProcessed": "0",
                              "query": {"totalBytesProcessed": "0", "statementType": statement_type,
                                        "cacheHit": False}},
               "status": {"state": "DONE"}}
        if failure:
            error = {"reason": failure.reason, "message": failure.message}
            job["status"] = {"state": "DONE", "errorResult": error, "errors": [error]}
        self.jobs[job_id] = job
        return job

    def synthetic(self, job_id: str, collection: str) -> Response:
        job = self.jobs[job_id]
        if collection == "jobs":
            return ok(job)
        if "errorResult" in job["status"]:
            error = job["status"]["errorResult"]
            code = {"rateLimitExceeded": 403, "invalid": 400}.get(error["reason"], 409)
            return ApiError(code, error["message"], reason=error["reason"]).response()
        return ok({"kind": "bigquery#getQueryResultsResponse", "jobReference": job["jobReference"],
                   "jobComplete": True, "totalRows": "0", "schema": {"fields": []}, "rows": [],
                   "totalBytesProcessed": "0", "cacheHit": False})

    # ---- answers the emulator gives without what BigQuery keeps ------------------------------------------
    def as_materialized(self, table: str, answer: Response) -> Response:
        mv = self.materialized.get(table)
        if not mv:
            return answer
        doc = json.loads(answer.body)
        doc.pop("view", None)
        doc.update({"type": "MATERIALIZED_VIEW", "labels": mv["labels"],
                    "materializedView": {"query": mv["query"], "enableRefresh": True,
                                         "refreshIntervalMs": "1800000",
                                         "lastRefreshTime": str(int(mv["created"] * 1000))}})
        return ok(doc)

    def with_access(self, dataset: str, answer: Response) -> Response:
        """The emulator's dataset with the access list kept here and an etag that changes with it."""
        doc = json.loads(answer.body)
        with self.lock:
            if dataset in self.access:
                doc["access"] = copy.deepcopy(self.access[dataset])
            digest = hashlib.sha256(json.dumps([doc.get("etag"), doc.get("access")], sort_keys=True).encode())
        doc["etag"] = digest.hexdigest()[:24]
        return ok(doc)

    def snapshot(self) -> dict:
        members = {ds: [e for e in entries if e.get("role") and any(k in e for k in MEMBER_KEYS if k != "specialGroup")]
                   for ds, entries in self.access.items()}
        return {"grants": {ds: found for ds, found in members.items() if found}, "access": self.access,
                "access_updates": self.access_updates, "materialized": self.materialized,
                "computations": self.computations, "table_updates": self.update_counts, "statements": self.statements}
