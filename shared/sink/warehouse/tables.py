"""The sink's tables: `events` (one row per delivery), `rejected_events` (with the reason) and `requests` (one row
per request that reached ingest, accepted or refused)."""

from __future__ import annotations

from shared.sink.warehouse.columns import FLOAT64, INT64, JSON, REP, REQ, STRING, TIMESTAMP, Column, TableDef

_IDENTITY = (
    Column("instance_id", STRING, "Sourcegraph instance id (metadata.identifier.*.instanceId); for a managed "
                                  "service, its serviceId."),
    Column("external_url", STRING, "The instance's external URL as it reported it."),
    Column("license_fingerprint", STRING, "SHA-256 of the license signature; identifies the license, never the key."),
    Column("license_tags", STRING, "Tags of the verified license (e.g. plan:enterprise-1, dev).", REP),
    Column("environment", STRING, "Gateway deployment that accepted the event: prod or dev."),
    Column("request_id", STRING, "RecordEvents metadata.requestId."),
    Column("message_id", STRING, "Pub/Sub message id that carried the event (one message per accepted batch)."),
    Column("received_at", TIMESTAMP, "When the ingest function accepted the batch (server clock).", REQ),
    Column("published_at", TIMESTAMP, "Pub/Sub publish time of the message."),
    Column("caller_kind", STRING, "Who recorded the event: licensed_instance, unlicensed_instance or "
                                  "managed_service."),
)

REDACTED_FIELDS = Column("redacted_fields", STRING, "Fields the gateway removed by its privacy policy before "
                         "publishing, e.g. parameters.privateMetadata (empty: nothing removed).", REP)

_CALLER = (
    Column("service_environment", STRING, "Managed services: metadata.identifier.managedService.serviceEnvironment."),
    Column("caller_email", STRING, "Managed services: the verified email of the caller's Google ID token."),
)

EVENTS = TableDef(
    name="events",
    description="Telemetry v2 events, one row per delivery (use events_deduped for exactly-once counts).",
    partition_field="timestamp",
    clustering=("feature", "action", "instance_id"),
    expiration_setting="EVENTS_PARTITION_EXPIRATION_DAYS",
    columns=(
        Column("event_id", STRING, "Event id (UUID) set by the instance; unique per event.", REQ),
        Column("timestamp", TIMESTAMP, "When the event happened (instance clock). Partitioning column.", REQ),
        Column("feature", STRING, "Feature, e.g. cody.completion, blob.codeintel.", REQ),
        Column("action", STRING, "Action, e.g. executed, failed, succeeded.", REQ),
        *_IDENTITY[:5],
        Column("server_version", STRING, "Sourcegraph version of the instance (source.server.version)."),
        Column("client_name", STRING, "Client that recorded the event, e.g. VSCODE_CODY_EXTENSION."),
        Column("client_version", STRING, "Version of that client."),
        Column("parameters_version", INT64, "Version of the event's own metadata shape (parameters.version)."),
        Column("metadata", JSON, "Numeric metadata: name -> number (legacyMetadata merged in)."),
        Column("private_metadata", JSON, "Private metadata (allowlisted by the instance); may be sensitive."),
        Column("billing_product", STRING, "parameters.billingMetadata.product."),
        Column("billing_category", STRING, "parameters.billingMetadata.category."),
        Column("user_id", INT64, "Instance-local user id (user.userId)."),
        Column("anonymous_user_id", STRING, "Anonymous user id (user.anonymousUserId)."),
        Column("sams_external_id", STRING, "Sourcegraph Accounts id (user.samsExternalId)."),
        Column("feature_flags", JSON, "Feature flags evaluated for the user: name -> value."),
        Column("marketing_tracking", JSON, "Marketing tracking fields (url, cohortId, referrer, ...)."),
        Column("interaction_trace_id", STRING, "interaction.traceId (OpenTelemetry trace)."),
        Column("interaction_id", STRING, "interaction.interactionId."),
        Column("country_code", STRING, "interaction.geolocation.countryCode."),
        Column("extra", JSON, "Event fields this gateway does not know yet, kept verbatim."),
        *_IDENTITY[5:],
        Column("inserted_at", TIMESTAMP, "When the sink wrote the row.", REQ),
        REDACTED_FIELDS,
        *_CALLER,
    ),
)

REJECTED = TableDef(
    name="rejected_events",
    description="Events the sink could not load, with the reason and the raw event (replay with tools.replay).",
    partition_field="received_at",
    clustering=("reason", "instance_id"),
    expiration_setting="REJECTED_PARTITION_EXPIRATION_DAYS",
    columns=(
        Column("rejection_id", STRING, "Unique id of this rejection (message id + event index).", REQ),
        Column("reason", STRING, "Typed reason: invalid_event, timestamp_out_of_range, bigquery_row_error, ...", REQ),
        Column("detail", STRING, "Human-readable detail of the reason."),
        Column("event_id", STRING, "The event's id, when it had one."),
        Column("raw_event", STRING, "The event exactly as published, as JSON text (PARSE_JSON to query it)."),
        Column("event_index", INT64, "Position of the event in its message."),
        *_IDENTITY,
        Column("rejected_at", TIMESTAMP, "When the sink rejected it.", REQ),
        Column("replayed_at", TIMESTAMP, "When tools.replay re-published it (NULL: not yet)."),
        REDACTED_FIELDS,
        *_CALLER,
    ),
)

REQUESTS = TableDef(
    name="requests",
    description="One row per request that reached the gateway, accepted or refused (refused ones bounded per "
                "client: see outcome 'suppressed'). Nothing of an event's content. Rows may repeat on a "
                "redelivery: count DISTINCT record_id (daily_ingestion_health does).",
    partition_field="received_at",
    clustering=("instance_id", "outcome"),
    expiration_setting="REQUESTS_PARTITION_EXPIRATION_DAYS",
    columns=(
        Column("record_id", STRING, "Unique id of this row, made by ingest.", REQ),
        Column("received_at", TIMESTAMP, "When ingest received the request (server clock). Partitioning column.",
               REQ),
        Column("outcome", STRING, "accepted (every event), partial, rejected (200, no event accepted), refused "
                                  "(4xx), failed (5xx), suppressed (refused requests counted, not recorded one by "
                                  "one: see suppressed).", REQ),
        Column("status", INT64, "HTTP status of the answer (NULL for suppressed rows)."),
        Column("error_code", STRING, "The whole request's refusal code, e.g. revoked_license, quota_exceeded."),
        Column("caller_kind", STRING, "licensed_instance, unlicensed_instance or managed_service, once the caller "
                                      "was verified (NULL: refused before)."),
        Column("instance_id", STRING, "The instance id, once the body's metadata was read with a verified caller."),
        Column("license_fingerprint", STRING, "SHA-256 of the license signature: the verified license, or the one "
                                              "a refused key claims when it parses (never the key)."),
        Column("environment", STRING, "Gateway deployment: prod or dev."),
        Column("request_id", STRING, "RecordEvents metadata.requestId."),
        Column("events", INT64, "Events in the body (NULL: the body was not read or not parsed)."),
        Column("accepted", INT64, "Events accepted and published."),
        Column("refused", JSON, "Refused events per reason, e.g. {\"invalid_event\": 2}."),
        Column("redacted", JSON, "Accepted events per field the privacy policy removed."),
        Column("warnings", JSON, "Accepted events per warning code (docs/api.md, Warnings)."),
        Column("wire_bytes", INT64, "Body bytes on the wire (Content-Length; NULL when chunked)."),
        Column("body_bytes", INT64, "Body bytes after gunzip."),
        Column("format", STRING, "json or protobuf."),
        Column("content_encoding", STRING, "gzip or identity."),
        Column("handling_ms", FLOAT64, "Time ingest spent on the request."),
        Column("earliest_event", TIMESTAMP, "Earliest timestamp of the accepted events (instance clock)."),
        Column("latest_event", TIMESTAMP, "Latest timestamp of the accepted events (instance clock)."),
        Column("user_agent", STRING, "The client's User-Agent (first 256 characters)."),
        Column("suppressed", INT64, "Suppressed rows: refused requests of this client (or of all clients, "
                                    "instance_id and license NULL) in one window of one function instance."),
        Column("suppressed_by_code", JSON, "Suppressed rows: those requests per error code."),
        Column("inserted_at", TIMESTAMP, "When the sink wrote the row.", REQ),
    ),
)

TABLES = (EVENTS, REJECTED, REQUESTS)
