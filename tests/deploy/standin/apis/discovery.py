"""Discovery documents for bq, both Google's own: BigQuery's (shipped in the SDK, where bq reads it) and the Data
Transfer API's (shipped in google-api-python-client, a pinned dev dependency: googleapiclient/discovery_cache)."""

from __future__ import annotations

import functools
import importlib.resources

from tests.deploy.standin.schemas import SDK
from tests.deploy.standin.web import Api, Handler, Request, Response, not_found

BIGQUERY_DOC = SDK / "platform/bq/discovery_next/bigquery.json"


@functools.cache
def datatransfer_document() -> bytes:
    """Google's discovery document (rest v1) of bigquerydatatransfer, as google-api-python-client ships it."""
    return (importlib.resources.files("googleapiclient") / "discovery_cache/documents/bigquerydatatransfer.v1.json"
            ).read_bytes()


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
            return Response(200, datatransfer_document())
        raise not_found(f"No discovery document for version {version}")
