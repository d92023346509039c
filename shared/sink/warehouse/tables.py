"""The sink's tables: `events` (one row per delivery) and `rejected_events` (with the reason)."""

from __future__ import annotations

from shared.sink.warehouse.columns import INT64, JSON, REP, REQ, STRING, TIMESTAMP, Column, TableDef

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

TABLES = (EVENTS, REJECTED)
