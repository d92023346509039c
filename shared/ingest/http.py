"""The ingest function's HTTP surface: routes, JSON answers, request logs."""

from __future__ import annotations

import threading
import time
import traceback

import orjson
from flask import Request, Response
from google.protobuf.any_pb2 import Any
from google.rpc import code_pb2, error_details_pb2, status_pb2

from shared import logs
from shared.errors import GatewayError, MethodNotAllowed, NotFound
from shared.gateway_pb2 import EventFailure, EventWarning, RecordEventsAnswer
from shared.ingest.body import PROTOBUF, PROTOBUF_TYPE, answer_format
from shared.ingest.config import IngestConfig
from shared.ingest.licenses.verifier import LicenseVerifier
from shared.ingest.publisher import Publisher
from shared.ingest.quota import Quota
from shared.ingest.record import RecordEvents
from shared.ingest.requestlog import RequestFacts, RequestLog

EVENTS_PATH = "/v1/events"
HEARTBEAT_CACHE_S = 10.0
ERROR_DOMAIN = "telemetry-gateway"
# The google.rpc.Code of each HTTP status the gateway answers (https://google.aip.dev/193's mapping).
RPC_CODES = {400: code_pb2.INVALID_ARGUMENT, 401: code_pb2.UNAUTHENTICATED, 403: code_pb2.PERMISSION_DENIED,
             404: code_pb2.NOT_FOUND, 405: code_pb2.UNIMPLEMENTED, 408: code_pb2.DEADLINE_EXCEEDED,
             413: code_pb2.INVALID_ARGUMENT, 415: code_pb2.INVALID_ARGUMENT, 429: code_pb2.RESOURCE_EXHAUSTED,
             500: code_pb2.INTERNAL, 503: code_pb2.UNAVAILABLE}


def json_response(body: dict, status: int = 200, headers: dict | None = None) -> Response:
    """A JSON answer."""
    return Response(orjson.dumps(body), status=status, headers=headers, mimetype="application/json")


def wants_protobuf(request: Request) -> bool:
    """Whether the answer is protobuf (shared.ingest.body.answer_format)."""
    return answer_format(request.headers.get("Accept"), request.headers.get("Content-Type")) == PROTOBUF


def protobuf_response(message: object, status: int = 200, headers: dict | None = None) -> Response:
    """A protobuf answer."""
    return Response(message.SerializeToString(), status=status, headers=headers, mimetype=PROTOBUF_TYPE)


def answer_message(body: dict) -> RecordEventsAnswer:
    """The JSON answer's content as a RecordEventsAnswer."""
    return RecordEventsAnswer(succeeded_events=body["succeededEvents"], failed_events=[
        EventFailure(index=f["index"], id=f["id"] or "", reason=f["reason"], message=f["message"],
                     retryable=f["retryable"]) for f in body["failedEvents"]],
        warnings=[EventWarning(**w) for w in body["warnings"]])


def status_message(status: int, code: str, message: str) -> status_pb2.Status:
    """A whole-request failure as google.rpc.Status, its reason code in an ErrorInfo (OTLP/HTTP's error body)."""
    info = Any()
    info.Pack(error_details_pb2.ErrorInfo(reason=code, domain=ERROR_DOMAIN))
    return status_pb2.Status(code=RPC_CODES.get(status, code_pb2.UNKNOWN), message=f"{code}: {message}",
                             details=[info])


def error_response(exc: GatewayError, protobuf: bool = False) -> Response:
    """The error answer of a whole-request failure, JSON or google.rpc.Status (a cut body also closes its
    connection)."""
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else {}
    if exc.status == 408:
        headers["Connection"] = "close"
    if protobuf:
        return protobuf_response(status_message(exc.status, exc.code, exc.message), exc.status, headers or None)
    return json_response(exc.body(), exc.status, headers or None)


def client_address(request: Request, edge_address: str | None = None) -> str | None:
    """The caller's IP as Google's front end saw it; without X-Forwarded-For, the peer address.

    Each Google front end appends the address it got the request from, and every entry before that is the caller's
    to write. Behind the load balancer the header ends "<client-ip>,<load-balancer-ip>" (external Application Load
    Balancer docs), so when the last entry is the edge's own address (EDGE_ADDRESS) the entry before it is the
    client; otherwise the last entry is (what Google's front end appends on a direct call to the function URL: not
    documented for run.app). A direct caller writing "<victim>, <edge address>" still ends with its own address.
    """
    forwarded = request.headers.get("X-Forwarded-For")
    if not forwarded:
        return request.remote_addr
    entries = forwarded.split(",")
    last = entries[-1].strip()
    if edge_address and len(entries) > 1 and last == edge_address:
        last = entries[-2].strip()
    return last[:64] or None


class Gateway:
    """Routes requests to RecordEvents and the operational endpoints."""

    def __init__(self, config: IngestConfig, record: RecordEvents, requests: RequestLog | None = None) -> None:
        self.config = config
        self.record = record
        self.requests = requests or RequestLog(config, record.publisher)
        self._heartbeat = (-HEARTBEAT_CACHE_S, False)
        self._heartbeat_lock = threading.Lock()
        logs.configure(version=config.version, environment=config.environment, function="ingest")

    @classmethod
    def from_config(cls, config: IngestConfig) -> Gateway:
        """Wire the production parts (raises ConfigError on bad settings)."""
        publisher = Publisher(config.topic_path, config.publish_timeout_s, config.retry_after_s)
        quota = Quota(config.quota_events_per_s, config.quota_burst_events)
        return cls(config, RecordEvents(config, LicenseVerifier.from_config(config), publisher, quota))

    def route(self, request: Request) -> Response:
        """Dispatch by path and method."""
        path = request.path.rstrip("/") or "/"
        if path == EVENTS_PATH:
            return self._only(request, "POST") or self._record(request)
        if path == "/__version__":
            return self._only(request, "GET") or json_response(
                {"version": self.config.version, "environment": self.config.environment}
            )
        if path == "/__lbheartbeat__":
            return self._only(request, "GET") or json_response({"status": "ok"})
        if path == "/__heartbeat__":
            if denied := self._only(request, "GET"):
                return denied
            ok = self._topic_reachable()
            return json_response({"status": "ok" if ok else "error", "checks": {"pubsub_topic": ok}},
                                 200 if ok else 503)
        return error_response(NotFound("not_found", f"no route {path}; POST events to {EVENTS_PATH}"),
                              wants_protobuf(request))

    def _topic_reachable(self) -> bool:
        """The topic check, asked of Pub/Sub at most once per HEARTBEAT_CACHE_S (the endpoint is public)."""
        now = time.monotonic()
        with self._heartbeat_lock:
            checked_at, ok = self._heartbeat
            if now - checked_at < HEARTBEAT_CACHE_S:
                return ok
            ok = self.record.publisher.topic_exists()
            self._heartbeat = (time.monotonic(), ok)
            return ok

    @staticmethod
    def _only(request: Request, method: str) -> Response | None:
        if request.method == method:
            return None
        denied = MethodNotAllowed("method_not_allowed", f"{request.method} is not allowed here; use {method}")
        response = error_response(denied, wants_protobuf(request))
        response.headers["Allow"] = method
        return response

    def _record(self, request: Request) -> Response:
        received_at_us = time.time_ns() // 1000
        started = time.perf_counter()
        fields: dict = {}
        code = None
        facts = RequestFacts()
        protobuf = wants_protobuf(request)
        try:
            outcome = self.record.handle(request, facts)
            fields = outcome.log
            response = protobuf_response(answer_message(outcome.body)) if protobuf else json_response(outcome.body)
        except GatewayError as exc:
            response = error_response(exc, protobuf)
            code = exc.code
            fields = {"reasonCode": exc.code, "detail": exc.message}
        except Exception as exc:  # a bug of ours: still an answer and a log line, then investigate
            response = (protobuf_response(status_message(500, "internal", "internal error"), 500) if protobuf else
                        json_response({"error": {"code": "internal", "message": "internal error"}}, 500))
            code = "internal"
            fields = {"reasonCode": "internal", "detail": f"{type(exc).__name__}: {str(exc)[:300]}",
                      "traceback": traceback.format_exc(limit=20)}
        latency_ms = round((time.perf_counter() - started) * 1000, 2)
        self.requests.record(facts, response.status_code, code, received_at_us, latency_ms,
                             request.headers.get("User-Agent"), client_address(request, self.config.edge_address))
        self.requests.flush_due()  # inside the request: between requests the instance may have no CPU
        severity = "INFO" if response.status_code < 400 else "WARNING"
        if response.status_code >= 500:
            severity = "ERROR"
        logs.log(severity, "record_events", status=response.status_code, latencyMs=latency_ms,
                 httpRequest={"requestMethod": request.method, "requestUrl": request.path,
                              "status": response.status_code, "latency": f"{latency_ms / 1000:.4f}s",
                              "userAgent": request.user_agent.string}, **fields)
        return response
