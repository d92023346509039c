"""Discovery documents for bq: BigQuery's (shipped in the SDK) and the Data Transfer API's, built from the
gcloud SDK's own generated Data Transfer client (its method table: paths, HTTP methods, parameters)."""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

from tests.deploy.standin.web import Api, Handler, Request, Response, not_found, ok

SDK = Path("/usr/lib/google-cloud-sdk")
BIGQUERY_DOC = SDK / "platform/bq/discovery_next/bigquery.json"
# The standard query parameters every Google discovery document declares (system parameters).
STANDARD_PARAMETERS = ("$.xgafv", "access_token", "callback", "fields", "key", "oauth_token", "quotaUser",
                       "upload_protocol", "uploadType")
DTS_CLIENT = SDK / "lib/googlecloudsdk/generated_clients/apis/bigquerydatatransfer/v1"


@functools.cache
def repeated_fields() -> set[tuple[str, str]]:
    """(message, field) pairs the generated messages declare repeated=True."""
    text = (DTS_CLIENT / "bigquerydatatransfer_v1_messages.py").read_text()
    pairs, current = set(), ""
    for line in text.splitlines():
        cls = re.match(r"class (\w+)\(", line)
        if cls:
            current = cls.group(1)
        field = re.match(r"\s+(\w+) = _messages\.\w+Field\(.*repeated=True", line)
        if field:
            pairs.add((current, field.group(1)))
    return pairs


@functools.cache
def datatransfer_document() -> dict:
    """A discovery document (rest v1) for bigquerydatatransfer from the generated client's ApiMethodInfo calls."""
    tree = ast.parse((DTS_CLIENT / "bigquerydatatransfer_v1_client.py").read_text())
    resources: dict = {}
    schemas: dict = {}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "ApiMethodInfo"):
            continue
        info = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
        *path, method = info["method_id"].split(".")[1:]
        params = {}
        for name in info.get("path_params", []):
            params[name] = {"type": "string", "location": "path", "required": True, "pattern": "^.*$"}
        for name in info.get("query_params", []):
            params[name] = {"type": "string", "location": "query",
                            "repeated": (info["request_type_name"], name) in repeated_fields()}
        entry = {"id": info["method_id"], "path": info["relative_path"], "flatPath": info.get("flat_path", ""),
                 "httpMethod": info["http_method"], "parameters": params,
                 "parameterOrder": info.get("ordered_params", []),
                 "response": {"$ref": info["response_type_name"]}}
        body = info.get("request_field")
        if body:
            ref = body[0].upper() + body[1:] if body != info["request_type_name"] else body
            entry["request"] = {"$ref": ref}
            schemas[ref] = {"id": ref, "type": "object"}
        schemas[info["response_type_name"]] = {"id": info["response_type_name"], "type": "object"}
        node_ = resources
        for part in path:
            node_ = node_.setdefault(part, {}).setdefault("resources", {})
        parent = resources
        for part in path[:-1]:
            parent = parent[part]["resources"]
        parent[path[-1]].setdefault("methods", {})[method] = entry
    return {"kind": "discovery#restDescription", "discoveryVersion": "v1", "id": "bigquerydatatransfer:v1",
            "name": "bigquerydatatransfer", "version": "v1", "protocol": "rest",
            "rootUrl": "https://bigquerydatatransfer.googleapis.com/", "servicePath": "",
            "basePath": "", "baseUrl": "https://bigquerydatatransfer.googleapis.com/", "batchPath": "batch",
            "parameters": {**{p: {"type": "string", "location": "query"} for p in STANDARD_PARAMETERS},
                           "alt": {"type": "string", "location": "query", "default": "json"},
                           "prettyPrint": {"type": "boolean", "location": "query", "default": "true"}},
            "schemas": schemas, "resources": resources}


class Discovery(Api):
    """GET /$discovery/rest?version=v2 (BigQuery) or v1 (Data Transfer), where bq looks for them."""

    name = "discovery"

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [("GET", r"rest", self.document)]

    def document(self, request: Request) -> Response:
        version = request.arg("version")
        if version == "v2":
            return Response(200, BIGQUERY_DOC.read_bytes())
        if version == "v1":
            return ok(datatransfer_document())
        raise not_found(f"No discovery document for version {version}")
