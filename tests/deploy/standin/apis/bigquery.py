"""BigQuery v2 in front of the BigQuery emulator: what DuckDB cannot run is answered or rewritten here.

GRANT … ON SCHEMA goes to the dataset's access list; CREATE/DROP MATERIALIZED VIEW run as plain views on the
emulator (the materialized view's labels and computations are remembered here); a multi-clause ALTER TABLE runs
as one statement per clause; table metadata updates are limited per table as BigQuery's quota documents.
"""

from __future__ import annotations

import collections
import copy
import json
import re
import threading
import time
import uuid
from urllib.parse import urlencode

from tests.deploy.standin import sql
from tests.deploy.standin.clock import now
from tests.deploy.standin.settings import Settings
from tests.deploy.standin.upstream import Upstream
from tests.deploy.standin.web import Api, ApiError, Request, Response, ok

RATE_LIMIT = ("Exceeded rate limits: too many table update operations for this table. For more information, see "
              "https://cloud.google.com/bigquery/docs/troubleshoot-quotas")
DDL_KINDS = {"GRANT": "GRANT", "CREATE_MATERIALIZED_VIEW": "CREATE_MATERIALIZED_VIEW",
             "DROP_MATERIALIZED_VIEW": "DROP_MATERIALIZED_VIEW", "ALTER_TABLE": "ALTER_TABLE"}


class JobFailed(Exception):
    """A query job that BigQuery would create and finish with an errorResult."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


class BigQuery(Api):
    """A pass-through to the emulator's REST port with BigQuery's behaviours the emulator lacks."""

    name = "bigquery"

    def __init__(self, settings: Settings, emulator: Upstream) -> None:
        self.settings, self.emulator = settings, emulator
        self.grants: dict[str, list[dict]] = {}
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
            table = re.fullmatch(r"bigquery/v2/projects/([^/]+)/datasets/([^/]+)/tables/([^/]+)", path)
            if table and request.method in ("PATCH", "PUT"):
                self.count_update(".".join(table.groups()))
            answer = self.forward(request)
            if table and request.method == "GET" and answer.status == 200:
                return self.as_materialized(".".join(table.groups()), answer)
            dataset = re.fullmatch(r"bigquery/v2/projects/([^/]+)/datasets/([^/]+)", path)
            if dataset and request.method == "GET" and answer.status == 200:
                return self.with_grants(".".join(dataset.groups()), answer)
            return answer
        except ApiError as error:
            return error.response()

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
        entries = self.grants.setdefault(statement.target, [])
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
            return ApiError(403 if error["reason"] == "rateLimitExceeded" else 409, error["message"],
                            reason=error["reason"]).response()
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

    def with_grants(self, dataset: str, answer: Response) -> Response:
        if dataset not in self.grants:
            return answer
        doc = json.loads(answer.body)
        access = doc.setdefault("access", [])
        access += [e for e in self.grants[dataset] if e not in access]
        return ok(doc)

    def snapshot(self) -> dict:
        return {"grants": self.grants, "materialized": self.materialized, "computations": self.computations,
                "table_updates": self.update_counts, "statements": self.statements}
