"""The stand-in's HTTP server: one port, a prefix per API, every request recorded to a JSONL file."""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from tests.deploy.standin.apis.bigquery import BigQuery
from tests.deploy.standin.apis.compute import Compute
from tests.deploy.standin.apis.datatransfer import DataTransfer
from tests.deploy.standin.apis.discovery import Discovery
from tests.deploy.standin.apis.eventarc import Eventarc
from tests.deploy.standin.apis.functions import Functions
from tests.deploy.standin.apis.iam import Iam
from tests.deploy.standin.apis.logging_metrics import LoggingMetrics
from tests.deploy.standin.apis.monitoring import Monitoring
from tests.deploy.standin.apis.pubsub import PubSub
from tests.deploy.standin.apis.resourcemanager import ResourceManager
from tests.deploy.standin.apis.run import Run
from tests.deploy.standin.apis.serviceusage import ServiceUsage
from tests.deploy.standin.identity import TITLES, USER_MANAGED, Identities
from tests.deploy.standin.schemas import SchemaCheck
from tests.deploy.standin.settings import Settings
from tests.deploy.standin.upstream import Upstream
from tests.deploy.standin.web import Api, Request, Response, not_found, ok, service_disabled

# gcloud's CLOUDSDK_API_ENDPOINT_OVERRIDES_<API> point at http://HOST/<prefix>/ (see fixtures.cli_env).
GCLOUD_PREFIXES = ("serviceusage", "iam", "cloudresourcemanager", "cloudfunctions", "run", "eventarc", "logging",
                   "monitoring", "pubsub", "compute")
# Compute's base URL carries its version (https://compute.googleapis.com/compute/v1/), the others' do not.
OVERRIDE_PATHS = {"compute": "compute/v1/"}
BQ_PREFIX = "bigquery"  # bq's --api=http://HOST/bigquery: BigQuery at bigquery/v2/..., Data Transfer at v1/...
# The service behind each API (identity.TITLES names it in a SERVICE_DISABLED error); Compute answers with its legacy
# errors[] reason too.
SERVICES = {"iam": "iam.googleapis.com", "cloudresourcemanager": "cloudresourcemanager.googleapis.com",
            "cloudfunctions": "cloudfunctions.googleapis.com", "run": "run.googleapis.com",
            "eventarc": "eventarc.googleapis.com", "logging": "logging.googleapis.com",
            "monitoring": "monitoring.googleapis.com", "pubsub": "pubsub.googleapis.com",
            "compute": "compute.googleapis.com", "bigquery": "bigquery.googleapis.com",
            "bigquerydatatransfer": "bigquerydatatransfer.googleapis.com"}
LEGACY_REASONS = {"compute": "accessNotConfigured"}
PROJECT_IN_PATH = re.compile(r"projects/([^/:]+)")


class Router:
    """Every API family by its path prefix, sharing the identities (accounts, IAM policies)."""

    def __init__(self, settings: Settings, pubsub_host: str, bigquery_host: str, log_path: Path) -> None:
        self.settings = settings
        self.identities = Identities(settings)
        pubsub = PubSub(self.identities, Upstream(pubsub_host))
        self.eventarc = Eventarc(settings, pubsub)
        self.functions = Functions(settings, self.identities, self.eventarc)
        self.bigquery = BigQuery(settings, Upstream(bigquery_host), self.identities)
        self.datatransfer = DataTransfer(self.identities)
        self.discovery = Discovery()
        self.compute = Compute(self.identities)
        self.apis: dict[str, Api] = {
            "serviceusage": ServiceUsage(self.identities), "iam": Iam(self.identities),
            "cloudresourcemanager": ResourceManager(self.identities), "cloudfunctions": self.functions,
            "run": Run(self.identities), "eventarc": self.eventarc, "logging": LoggingMetrics(),
            "monitoring": Monitoring(self.identities), "pubsub": pubsub, "compute": self.compute}
        self.log_path, self.log_lock = log_path, threading.Lock()
        self.schemas = SchemaCheck()

    def route(self, request: Request) -> tuple[str, Response]:
        """(API name, answer) for a request whose path still carries its prefix."""
        head, _, rest = request.path.partition("/")
        if head in self.apis:
            return head, self.disabled(head, rest) or self.apis[head].handle(self.strip(request, rest))
        if head == BQ_PREFIX:
            api = self.bigquery if rest.startswith("bigquery/") else self.datatransfer
            return api.name, self.disabled(api.name, rest) or api.handle(self.strip(request, rest))
        if head == "$discovery":
            return "discovery", self.discovery.handle(self.strip(request, rest))
        if head == "upload":
            return "upload", self.functions.receive_upload(self.strip(request, rest))
        if head == "token" and request.method == "POST":  # OAuth 2.0 token endpoint (a service account key's token_uri)
            return "oauth2", ok({"access_token": "standin-token", "expires_in": 3600, "token_type": "Bearer"})
        if request.path == "__standin/state":
            return "standin", ok(self.snapshot())
        if request.path == "__standin/dns" and request.method == "POST":  # tests point domains at addresses
            with self.compute.lock:
                self.compute.dns.update(request.json())
            return "standin", ok(self.compute.dns)
        if request.path == "__standin/settings" and request.method == "POST":  # tests change a behaviour
            for name, value in request.json().items():
                setattr(self.settings, name, type(getattr(self.settings, name))(value))
            return "standin", ok(vars(self.settings))
        return "unknown", not_found(f"The stand-in serves no API at /{request.path}").response()

    def disabled(self, api: str, path: str) -> Response | None:
        """The 403 SERVICE_DISABLED answer when the API's service is off in the project the path names."""
        if api not in SERVICES:
            return None
        found = PROJECT_IN_PATH.search(path)
        project = found.group(1) if found else ""
        if project == "-":  # projects/-/serviceAccounts/EMAIL: the account's own project
            account = USER_MANAGED.search(path)
            project = account.group(0)[1:].split(".")[0] if account else ""
        service = SERVICES[api]
        if not project or self.identities.is_enabled(project, service):
            return None
        number = self.identities.project_number(self.identities.project_id(project))
        return service_disabled(service, TITLES[service], number, LEGACY_REASONS.get(api)).response()

    @staticmethod
    def strip(request: Request, rest: str) -> Request:
        return Request(request.method, rest, request.query, request.body, request.headers, request.base_url)

    def snapshot(self) -> dict:
        """Every API's state, for tests."""
        state = {name: api.snapshot() for name, api in self.apis.items()}
        state.update(bigquery=self.bigquery.snapshot(), bigquerydatatransfer=self.datatransfer.snapshot(),
                     identities=self.identities.snapshot(), schemas=self.schemas.snapshot())
        return state

    def record(self, api: str, request: Request, status: int, full_path: str) -> None:
        """One JSONL line: time, API, method, path, query, status and body (JSON, text, or its size)."""
        try:
            body: object = request.json() if request.body else None
        except (ValueError, UnicodeDecodeError):
            body = {"bytes": len(request.body)}
        line = {"t": time.time(), "api": api, "method": request.method, "path": full_path, "query": request.query,
                "status": status, "body": body}
        with self.log_lock, self.log_path.open("a") as log:
            log.write(json.dumps(line) + "\n")


def make_handler(router: Router) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to the router."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def handle_any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            url = urlsplit(self.path)
            path = url.path.lstrip("/")
            request = Request(self.command, path, parse_qs(url.query), body, dict(self.headers.items()),
                              f"http://{self.headers.get('Host', '127.0.0.1')}")
            record = path != "__standin/state"
            try:
                api, answer = router.route(request)
            except Exception as error:  # an answer, never a dropped connection
                api, answer = "error", ok({"error": {"code": 500, "message": repr(error), "status": "INTERNAL"}}, 500)
            if record:
                router.record(api, request, answer.status, url.path)
            if answer.status < 300 and not answer.forwarded and answer.content_type.startswith("application/json"):
                router.schemas.check(api, self.command, path.partition("/")[2], answer.body)
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(answer.body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any

        def log_message(self, *args: object) -> None:
            return

    return Handler


def serve(port: int, settings: Settings, pubsub_host: str, bigquery_host: str, log_path: Path) -> None:
    """Serve on 127.0.0.1:port until killed."""
    router = Router(settings, pubsub_host, bigquery_host, log_path)
    server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(router))
    server.daemon_threads = True
    server.serve_forever()
