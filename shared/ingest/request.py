"""The RecordEvents request: its Authorization header, its JSON document and the caller's identifier.

Everything about a request except its events (checked one by one in `batch`) and its bytes on the
wire (`body`) is validated here.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from shared import jsontext
from shared.envelope import Identity
from shared.errors import BadRequest, Forbidden, PayloadTooLarge, Unauthorized
from shared.ingest.config import IngestConfig
from shared.ingest.idtokens import IdTokenVerifier, ServiceCaller
from shared.ingest.licenses.verifier import License

MAX_ID_CHARS = 256  # instanceId, externalUrl, requestId
MAX_METADATA_FIELDS = 8
MAX_METADATA_BYTES = 4096


@dataclass(frozen=True)
class RecordRequest:
    """A parsed RecordEvents body: its metadata object and its (not yet validated) events."""

    metadata: dict
    events: list

    @property
    def request_id(self) -> str | None:
        """metadata.requestId, when sent."""
        return _short_string(self.metadata, "requestId", required=False)


def bearer_token(header: str | None, max_chars: int) -> str | None:
    """The token of an `Authorization: Bearer ...` header, None when absent."""
    if not header:
        return None
    if len(header) > max_chars:
        raise Unauthorized("invalid_authorization", f"Authorization header longer than {max_chars} characters")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("invalid_authorization", "Authorization must be 'Bearer <license key>'")
    return token.strip()


def body_license_key(metadata: dict, max_chars: int) -> str | None:
    """metadata.identifier.licensedInstance.licenseKey, when the body carries one (whitespace removed)."""
    identifier = metadata.get("identifier")
    instance = identifier.get("licensedInstance") if isinstance(identifier, dict) else None
    key = instance.get("licenseKey") if isinstance(instance, dict) else None
    if key in (None, ""):
        return None
    if not isinstance(key, str) or len(key) > max_chars:
        raise Unauthorized("invalid_license", f"licenseKey must be a string of at most {max_chars} characters")
    return key.strip()


def parse_document(raw: bytes, max_events: int) -> RecordRequest:
    """The body's JSON: an object with a metadata object and an events list of at most max_events.

    Metadata has two known fields (requestId, identifier); others are ignored, and the object is capped.
    """
    try:
        doc = jsontext.loads(raw)
    except jsontext.JSONTextError as exc:
        raise BadRequest("malformed_json", f"body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise BadRequest("invalid_request", "body must be a JSON object with metadata and events")
    metadata, events = doc.get("metadata"), doc.get("events")
    if not isinstance(metadata, dict):
        raise BadRequest("invalid_metadata", "metadata must be an object")
    if len(metadata) > MAX_METADATA_FIELDS or _json_size(metadata) > MAX_METADATA_BYTES:
        raise BadRequest("invalid_metadata", f"metadata is limited to {MAX_METADATA_FIELDS} fields and "
                         f"{MAX_METADATA_BYTES} bytes (it carries requestId and identifier)")
    if not isinstance(events, list):
        raise BadRequest("invalid_request", "events must be a list")
    if len(events) > max_events:
        raise PayloadTooLarge("too_many_events", f"{len(events)} events; at most {max_events}")
    return RecordRequest(metadata, events)


def _json_size(value: object) -> int:
    """Bytes of value as JSON; anything orjson cannot write (an integer beyond 64 bits) counts as too big."""
    try:
        return len(orjson.dumps(value))
    except TypeError:
        return MAX_METADATA_BYTES + 1


def _managed_service(ident: dict, caller: Caller, config: IngestConfig, services: IdTokenVerifier) -> Identity:
    if not isinstance(caller, ServiceCaller):
        raise Unauthorized("id_token_required", "managed services send 'Authorization: Bearer <Google ID token>'")
    service_id = _short_string(ident, "serviceId", required=True)
    if not services.allows(service_id, caller):
        raise Forbidden("service_not_allowed", f"{caller.email} may not record events for {service_id!r}")
    return Identity(instance_id=service_id, external_url=None, license_fingerprint=None, license_tags=(),
                    environment=config.environment, kind="managed_service",
                    service_environment=_short_string(ident, "serviceEnvironment", required=False),
                    caller_email=caller.email)


def _short_string(container: dict, key: str, *, required: bool) -> str | None:
    value = container.get(key)
    if value in (None, "") and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_ID_CHARS:
        raise BadRequest("invalid_metadata", f"{key} must be a non-empty string of at most {MAX_ID_CHARS} chars")
    return value


Caller = License | ServiceCaller | None


def parse_identity(metadata: dict, caller: Caller, config: IngestConfig,
                   services: IdTokenVerifier | None = None) -> Identity:
    """The caller's identity from request metadata and its verified credential (license or ID token)."""
    identifier = metadata.get("identifier")
    if not isinstance(identifier, dict) or len(identifier) != 1:
        raise BadRequest("invalid_metadata", "metadata.identifier must hold exactly one identifier")
    (kind, ident), = identifier.items()
    if not isinstance(ident, dict):
        raise BadRequest("invalid_metadata", "metadata.identifier value must be an object")
    if kind == "managedService" and services is not None:
        return _managed_service(ident, caller, config, services)
    if isinstance(caller, ServiceCaller):
        raise Unauthorized("license_required", f"an ID token cannot identify a {kind}; send its license key")
    lic = caller
    if kind == "licensedInstance":
        if lic is None:
            raise Unauthorized("missing_license", "licensed instances send 'Authorization: Bearer <license key>'")
        kind_name = "licensed_instance"
    elif kind == "unlicensedInstance":
        if not config.allow_unlicensed:
            raise Forbidden("unlicensed_not_allowed", "this gateway accepts licensed instances only")
        kind_name = "unlicensed_instance"
    else:
        raise Forbidden("identifier_not_allowed", f"identifier {kind!r} is not accepted here")
    return Identity(
        instance_id=_short_string(ident, "instanceId", required=True),
        external_url=_short_string(ident, "externalUrl", required=False),
        license_fingerprint=lic.fingerprint if lic else None,
        license_tags=lic.tags if lic else (),
        environment=config.environment,
        kind=kind_name,
    )
