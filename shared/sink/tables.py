"""BigQuery table and view definitions: the one source for the sink, deploy.sh and the docs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    """One column: BigQuery type, mode and the analyst-facing description."""

    name: str
    type: str
    description: str
    mode: str = "NULLABLE"


@dataclass(frozen=True)
class TableDef:
    """A clustered table, DAY-partitioned on partition_field (no partitioning when it is empty)."""

    name: str
    description: str
    partition_field: str
    clustering: tuple[str, ...]
    columns: tuple[Column, ...]
    expiration_setting: str = ""  # the environment variable holding its partition expiration in days

    def column(self, name: str) -> Column:
        """Look up a column by name."""
        return next(c for c in self.columns if c.name == name)


STRING, INT64, TIMESTAMP, JSON = "STRING", "INT64", "TIMESTAMP", "JSON"
DATE, BYTES, FLOAT64 = "DATE", "BYTES", "FLOAT64"
REQ, REP = "REQUIRED", "REPEATED"

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
    description="Events the sink could not load, with the reason and the raw event (replay with shared.tools.replay).",
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
        Column("replayed_at", TIMESTAMP, "When shared.tools.replay re-published it (NULL: not yet)."),
        REDACTED_FIELDS,
        *_CALLER,
    ),
)

TABLES = (EVENTS, REJECTED)

VIEWS = {
    "events_deduped": """
SELECT * EXCEPT (delivery)
FROM (
  SELECT *, ROW_NUMBER() OVER (
    PARTITION BY license_fingerprint, instance_id, event_id, `timestamp`, feature, action
    ORDER BY received_at, inserted_at, message_id) AS delivery
  FROM `{dataset}.events`)
WHERE delivery = 1""",
}
# Views of earlier releases, dropped on deploy: daily_event_counts summed `instances` into double counts
# (now daily_feature_usage with sketches); instances_last_seen scanned 400 days a call (now `instances`).
RETIRED_VIEWS = ("daily_event_counts", "instances_last_seen")


def add_column_statements(table: TableDef, table_ref: str, names: list[str] | None = None) -> list[str]:
    """The one additive migration: `ALTER TABLE ... ADD COLUMN IF NOT EXISTS`, a statement per column.

    Default: every column that may be added later (all but REQUIRED ones, which exist since creation).
    New columns are NULLABLE (or REPEATED); BigQuery adds them without rewriting the table, and each
    statement is a no-op for a column that exists, so deploy.sh runs them on every redeploy.
    """
    columns = [table.column(n) for n in names] if names else [c for c in table.columns if c.mode != "REQUIRED"]
    if any(c.mode == "REQUIRED" for c in columns):
        raise ValueError("a REQUIRED column cannot be added to an existing table")
    return [f"ALTER TABLE `{table_ref}` ADD COLUMN IF NOT EXISTS `{c.name}` "
            f"{f'ARRAY<{c.type}>' if c.mode == 'REPEATED' else c.type}" for c in columns]


def partition_expiration_sql(table_ref: str, days: int) -> str:
    """Partitions older than `days` are deleted by BigQuery (set on every redeploy)."""
    return f"ALTER TABLE `{table_ref}` SET OPTIONS (partition_expiration_days = {int(days)})"


def view_sql(name: str, dataset: str) -> str:
    """The view's query with its dataset filled in (dataset as `project.dataset` or `dataset`)."""
    return VIEWS[name].format(dataset=dataset).strip()


def sql_string(text: str) -> str:
    """A GoogleSQL string literal holding text."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def create_table_sql(table: TableDef, table_ref: str, expiration_days: int | None = None) -> str:
    """`CREATE TABLE IF NOT EXISTS` with column descriptions, partitioning, clustering and expiration."""
    columns = ",\n  ".join(
        f"`{c.name}` {f'ARRAY<{c.type}>' if c.mode == 'REPEATED' else c.type}"
        f"{' NOT NULL' if c.mode == 'REQUIRED' else ''} OPTIONS (description = {sql_string(c.description)})"
        for c in table.columns)
    options = [f"description = {sql_string(table.description)}"]
    if table.partition_field and expiration_days:
        options.append(f"partition_expiration_days = {int(expiration_days)}")
    return (f"CREATE TABLE IF NOT EXISTS `{table_ref}` (\n  {columns})"
            + (f"\nPARTITION BY `{table.partition_field}`" if table.partition_field else "")
            + f"\nCLUSTER BY {', '.join(table.clustering)}\nOPTIONS ({', '.join(options)})")


def schema_json(table: TableDef) -> list[dict]:
    """The table's schema in bq's JSON schema-file form."""
    return [{"name": c.name, "type": c.type, "mode": c.mode, "description": c.description} for c in table.columns]
